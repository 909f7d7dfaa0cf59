// Package ghreleasetest is an in-memory stand-in for the parts of the GitHub
// REST API that rustpatcher-go uses, for tests that cannot reach GitHub: the
// releases of repositories (and the latest one), their assets (list, upload, delete, download),
// ETag and If-None-Match with 304 answers on the release list, and
// rate-limit headers and errors on demand; and the web links a browser
// downloads assets through, without the API: releases/latest/download/NAME
// redirects to releases/download/TAG/NAME of the latest release, which
// redirects to the object store, which answers Range and conditional
// requests.
package ghreleasetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Asset is a release asset held by the Server.
type Asset struct {
	ID          int64
	Name        string
	ContentType string
	Data        []byte
}

// Release is a release held by the Server.
type Release struct {
	ID         int64
	Tag        string
	Draft      bool
	Prerelease bool
	Assets     []*Asset
}

// Server is a fake GitHub API. Start it with NewServer; its URL serves both
// the REST API and uploads. All methods are safe for concurrent use.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	releases map[string][]*Release // by "owner/repo", oldest first
	nextID   int64
	requests []string // "METHOD path", in order
	// limit, if set, answers the next n requests to the release list with
	// the given status and headers.
	limited []Limit
	// Remaining is reported in X-RateLimit-Remaining.
	remaining int
	// maxUpload bounds uploads.
	maxUpload int64
	// authOnDownload counts redirected downloads that carried an
	// Authorization header.
	authOnDownload int
}

// A Limit is a rate-limit answer that the Server gives to one request for
// the release list.
type Limit struct {
	// Status is 403 or 429.
	Status int
	// RetryAfter, if positive, is sent as Retry-After in seconds.
	RetryAfter int
	// Reset, if not zero, is sent as X-RateLimit-Reset with
	// X-RateLimit-Remaining: 0.
	Reset time.Time
}

// NewServer starts a Server, which is closed when the test ends.
func NewServer(t testing.TB) *Server {
	s := &Server{releases: make(map[string][]*Release), nextID: 1000, remaining: 5000, maxUpload: 1 << 30}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /repos/{owner}/{repo}/releases", s.listReleases)
	mux.HandleFunc("POST /repos/{owner}/{repo}/releases", s.createRelease)
	// releases/tags/{tag}, releases/{id}/assets and releases/assets/{id}
	// overlap as patterns.
	mux.HandleFunc("GET /repos/{owner}/{repo}/releases/{a}/{b}", func(w http.ResponseWriter, r *http.Request) {
		switch a, b := r.PathValue("a"), r.PathValue("b"); {
		case a == "tags":
			s.releaseByTag(w, r, b)
		case a == "assets":
			r.SetPathValue("id", b)
			s.getAsset(w, r)
		case b == "assets":
			r.SetPathValue("id", a)
			s.listAssets(w, r)
		default:
			apiError(w, http.StatusNotFound, "Not Found")
		}
	})
	mux.HandleFunc("GET /repos/{owner}/{repo}/releases/latest", s.latestRelease)
	mux.HandleFunc("POST /repos/{owner}/{repo}/releases/{id}/assets", s.uploadAsset)
	mux.HandleFunc("GET /_objects/{id}", s.downloadObject)
	mux.HandleFunc("GET /{owner}/{repo}/releases/latest/download/{name}", s.latestDownload)
	mux.HandleFunc("GET /{owner}/{repo}/releases/download/{tag}/{name}", s.tagDownload)
	mux.HandleFunc("DELETE /repos/{owner}/{repo}/releases/assets/{id}", s.deleteAsset)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// AddRelease adds a release of tag to repo ("owner/name") and returns it.
func (s *Server) AddRelease(repo, tag string) *Release {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addRelease(repo, tag)
}

func (s *Server) addRelease(repo, tag string) *Release {
	s.nextID++
	r := &Release{ID: s.nextID, Tag: tag}
	s.releases[repo] = append(s.releases[repo], r)
	return r
}

// MarkPrerelease marks the release of tag in repo as a pre-release.
func (s *Server) MarkPrerelease(repo, tag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.releases[repo] {
		if r.Tag == tag {
			r.Prerelease = true
		}
	}
}

// AddAsset adds an asset to the release of tag in repo, replacing one of the
// same name.
func (s *Server) AddAsset(repo, tag, name string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.releases[repo] {
		if r.Tag == tag {
			r.Assets = deleteNamed(r.Assets, name)
			s.nextID++
			r.Assets = append(r.Assets, &Asset{ID: s.nextID, Name: name, ContentType: "application/octet-stream", Data: data})
			return
		}
	}
	panic("ghreleasetest: no release " + tag + " in " + repo)
}

// Assets returns a copy of the assets of the release of tag in repo, by name.
func (s *Server) Assets(repo, tag string) map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string][]byte)
	for _, r := range s.releases[repo] {
		if r.Tag == tag {
			for _, a := range r.Assets {
				m[a.Name] = append([]byte(nil), a.Data...)
			}
		}
	}
	return m
}

// Requests returns the requests served so far, as "METHOD /path".
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// LimitNext makes the next len(l) requests for a release list fail with the
// given rate-limit answers, in order.
func (s *Server) LimitNext(l ...Limit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited = append(s.limited, l...)
}

func deleteNamed(as []*Asset, name string) []*Asset {
	out := as[:0]
	for _, a := range as {
		if a.Name != name {
			out = append(out, a)
		}
	}
	return out
}

func (s *Server) find(r *http.Request) ([]*Release, string) {
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	return s.releases[repo], repo
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

func (s *Server) baseURL(r *http.Request) string { return "http://" + r.Host + "/" }

func (s *Server) assetJSON(r *http.Request, repo string, a *Asset) map[string]any {
	return map[string]any{
		"id":                   a.ID,
		"name":                 a.Name,
		"size":                 len(a.Data),
		"content_type":         a.ContentType,
		"state":                "uploaded",
		"url":                  fmt.Sprintf("%srepos/%s/releases/assets/%d", s.baseURL(r), repo, a.ID),
		"browser_download_url": fmt.Sprintf("%s%s/releases/download/%s", s.baseURL(r), repo, a.Name),
	}
}

func (s *Server) releaseJSON(r *http.Request, repo string, rel *Release) map[string]any {
	assets := []any{}
	for _, a := range rel.Assets {
		assets = append(assets, s.assetJSON(r, repo, a))
	}
	return map[string]any{
		"id":         rel.ID,
		"tag_name":   rel.Tag,
		"name":       rel.Tag,
		"draft":      rel.Draft,
		"prerelease": rel.Prerelease,
		"assets":     assets,
		"upload_url": fmt.Sprintf("%srepos/%s/releases/%d/assets{?name,label}", s.baseURL(r), repo, rel.ID),
	}
}

func (s *Server) listReleases(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.limited) > 0 {
		l := s.limited[0]
		s.limited = s.limited[1:]
		if l.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(l.RetryAfter))
		}
		if !l.Reset.IsZero() {
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(l.Reset.Unix(), 10))
		}
		apiError(w, l.Status, "API rate limit exceeded")
		return
	}
	rels, repo := s.find(r)
	per := 30
	if n, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && n > 0 && n <= 100 {
		per = n
	}
	sorted := append([]*Release(nil), rels...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].ID > sorted[j].ID }) // newest first
	if len(sorted) > per {
		sorted = sorted[:per]
	}
	out := []any{}
	for _, rel := range sorted {
		out = append(out, s.releaseJSON(r, repo, rel))
	}
	body, _ := json.Marshal(out)
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("X-RateLimit-Limit", "5000")
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag {
		// A 304 does not count against the rate limit.
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(s.remaining))
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.remaining--
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(s.remaining))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(body)
}

// RateRemaining returns the rate limit left, as the Server counts it: every
// answered request for the release list costs one, except a 304.
func (s *Server) RateRemaining() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remaining
}

func (s *Server) createRelease(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TagName    string `json:"tag_name"`
		Draft      bool   `json:"draft"`
		Prerelease bool   `json:"prerelease"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.TagName == "" {
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed: tag_name")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rels, repo := s.find(r)
	for _, rel := range rels {
		if rel.Tag == req.TagName {
			apiError(w, http.StatusUnprocessableEntity, "Validation Failed: already_exists")
			return
		}
	}
	rel := s.addRelease(repo, req.TagName)
	rel.Draft, rel.Prerelease = req.Draft, req.Prerelease
	writeJSON(w, http.StatusCreated, s.releaseJSON(r, repo, rel))
}

func (s *Server) releaseByTag(w http.ResponseWriter, r *http.Request, tag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rels, repo := s.find(r)
	for _, rel := range rels {
		if rel.Tag == tag {
			writeJSON(w, http.StatusOK, s.releaseJSON(r, repo, rel))
			return
		}
	}
	apiError(w, http.StatusNotFound, "Not Found")
}

func (s *Server) releaseByID(r *http.Request) (*Release, string) {
	rels, repo := s.find(r)
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	for _, rel := range rels {
		if rel.ID == id {
			return rel, repo
		}
	}
	return nil, repo
}

func (s *Server) assetByID(r *http.Request) (*Release, *Asset, string) {
	rels, repo := s.find(r)
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	for _, rel := range rels {
		for _, a := range rel.Assets {
			if a.ID == id {
				return rel, a, repo
			}
		}
	}
	return nil, nil, repo
}

func (s *Server) listAssets(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rel, repo := s.releaseByID(r)
	if rel == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	out := []any{}
	for _, a := range rel.Assets {
		out = append(out, s.assetJSON(r, repo, a))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) uploadAsset(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" || strings.ContainsAny(name, "/\\") {
		apiError(w, http.StatusUnprocessableEntity, "Validation Failed: name")
		return
	}
	if r.ContentLength < 0 {
		apiError(w, http.StatusLengthRequired, "Content-Length required")
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, s.maxUpload+1))
	if err != nil || int64(len(data)) != r.ContentLength {
		apiError(w, http.StatusBadRequest, "body does not match Content-Length")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rel, repo := s.releaseByID(r)
	if rel == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	for _, a := range rel.Assets {
		if a.Name == name {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
				"message": "Validation Failed",
				"errors":  []any{map[string]string{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}},
			})
			return
		}
	}
	s.nextID++
	a := &Asset{ID: s.nextID, Name: name, ContentType: r.Header.Get("Content-Type"), Data: data}
	rel.Assets = append(rel.Assets, a)
	writeJSON(w, http.StatusCreated, s.assetJSON(r, repo, a))
}

func (s *Server) getAsset(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, a, repo := s.assetByID(r)
	s.mu.Unlock()
	if a == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	if r.Header.Get("Accept") != "application/octet-stream" {
		writeJSON(w, http.StatusOK, s.assetJSON(r, repo, a))
		return
	}
	// Like GitHub, redirect to the object store (a signed URL, which must
	// be fetched without the API token).
	http.Redirect(w, r, fmt.Sprintf("/_objects/%d", a.ID), http.StatusFound)
}

func (s *Server) downloadObject(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	if r.Header.Get("Authorization") != "" {
		s.authOnDownload++
	}
	var data []byte
	for _, rels := range s.releases {
		for _, rel := range rels {
			for _, a := range rel.Assets {
				if a.ID == id {
					data = a.Data
				}
			}
		}
	}
	s.mu.Unlock()
	if data == nil {
		http.NotFound(w, r)
		return
	}
	sum := sha256.Sum256(data)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// latestDownload redirects, as GitHub's web links do, to the asset's link
// in the latest release: the newest that is neither a draft nor a
// pre-release.
// latest returns the newest release of the request's repository that is
// neither a draft nor a pre-release, as GitHub's "latest". s.mu is held.
func (s *Server) latest(r *http.Request) (*Release, string) {
	rels, repo := s.find(r)
	var latest *Release
	for _, rel := range rels {
		if !rel.Draft && !rel.Prerelease && (latest == nil || rel.ID > latest.ID) {
			latest = rel
		}
	}
	return latest, repo
}

// latestRelease answers GET /repos/{owner}/{repo}/releases/latest.
func (s *Server) latestRelease(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rel, repo := s.latest(r); rel != nil {
		writeJSON(w, http.StatusOK, s.releaseJSON(r, repo, rel))
		return
	}
	apiError(w, http.StatusNotFound, "Not Found")
}

func (s *Server) latestDownload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	latest, _ := s.latest(r)
	s.mu.Unlock()
	if latest == nil {
		http.NotFound(w, r)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/%s/%s/releases/download/%s/%s", r.PathValue("owner"), r.PathValue("repo"), latest.Tag, r.PathValue("name")), http.StatusFound)
}

// tagDownload redirects to the object store, as GitHub does (to a signed
// URL).
func (s *Server) tagDownload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	rels, _ := s.find(r)
	var id int64
	for _, rel := range rels {
		if rel.Tag == r.PathValue("tag") {
			for _, a := range rel.Assets {
				if a.Name == r.PathValue("name") {
					id = a.ID
				}
			}
		}
	}
	s.mu.Unlock()
	if id == 0 {
		http.NotFound(w, r)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/_objects/%d?X-Amz-Signature=test", id), http.StatusFound)
}

// AuthOnDownload returns how many redirected asset downloads carried an
// Authorization header: a client must not send its token to the object
// store.
func (s *Server) AuthOnDownload() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authOnDownload
}

func (s *Server) deleteAsset(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rel, a, _ := s.assetByID(r)
	if a == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	rel.Assets = deleteNamed(rel.Assets, a.Name)
	w.WriteHeader(http.StatusNoContent)
}
