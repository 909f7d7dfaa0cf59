package ghrelease

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-github/v60/github"
)

// Repo names a GitHub repository.
type Repo struct {
	Owner string
	Name  string
}

// ParseRepo parses "OWNER/REPO".
func ParseRepo(s string) (Repo, error) {
	owner, name, ok := strings.Cut(s, "/")
	if !ok || owner == "" || name == "" || strings.ContainsAny(name, "/ ") || strings.ContainsAny(owner, " ") {
		return Repo{}, fmt.Errorf("repository %q: want OWNER/REPO", s)
	}
	return Repo{Owner: owner, Name: name}, nil
}

// String returns "owner/name".
func (r Repo) String() string { return r.Owner + "/" + r.Name }

// ClientConfig configures NewClient.
type ClientConfig struct {
	// HTTPClient makes the requests; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Token authenticates the requests when not empty. It is sent only
	// in the Authorization header and never logged.
	Token string
	// APIURL is the REST API's base URL; empty means https://api.github.com/.
	// On Actions runners it is $GITHUB_API_URL.
	APIURL string
	// UploadURL is the base URL for release asset uploads. Empty means
	// https://uploads.github.com/ when APIURL is empty or
	// https://api.github.com, and APIURL otherwise (as a test server
	// serves both).
	UploadURL string
}

// NewClient returns a go-github client for c.
func NewClient(c ClientConfig) (*github.Client, error) {
	gc := github.NewClient(c.HTTPClient)
	if c.Token != "" {
		gc = gc.WithAuthToken(c.Token)
	}
	api := strings.TrimSuffix(c.APIURL, "/")
	if api == "" || api == "https://api.github.com" {
		return gc, nil
	}
	base, err := baseURL(api)
	if err != nil {
		return nil, fmt.Errorf("GitHub API URL: %w", err)
	}
	gc.BaseURL = base
	up := c.UploadURL
	if up == "" {
		up = api
	}
	upload, err := baseURL(up)
	if err != nil {
		return nil, fmt.Errorf("GitHub upload URL: %w", err)
	}
	gc.UploadURL = upload
	return gc, nil
}

// baseURL parses s and adds the trailing slash that go-github requires.
func baseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", s)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

// statusCode returns the HTTP status of a go-github error, or 0.
func statusCode(err error) int {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response.StatusCode
	}
	var rl *github.RateLimitError
	if errors.As(err, &rl) && rl.Response != nil {
		return rl.Response.StatusCode
	}
	var ab *github.AbuseRateLimitError
	if errors.As(err, &ab) && ab.Response != nil {
		return ab.Response.StatusCode
	}
	return 0
}
