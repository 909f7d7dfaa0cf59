// Package selfreplace replaces an executable file on disk so that a crash at
// any point leaves either the complete old file or the complete new one.
//
// The new contents go into a temporary file in the executable's own
// directory (so the final rename never crosses file systems). Once written,
// the temporary file is synced and given the executable's mode; the caller
// may then check it (for example run it once) before Commit keeps a copy of
// the old executable as "<exe>.old", renames the new file over the
// executable and syncs the directory. Until that rename the executable is
// never opened for writing, and the rename itself is atomic.
//
// Every file-system call goes through the FS interface and every step is
// announced to an optional hook, so tests can inject failures (a full disk, a
// failing rename) and crashes between any two steps.
package selfreplace

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// BackupSuffix is appended to the executable's path to name the copy of the
// previous binary that Commit keeps for rollback.
const BackupSuffix = ".old"

// tempMarker is part of every temporary file's name, so stale ones left by a
// crash can be recognised.
const tempMarker = ".rpnew-"

// A Step is a point between two file-system steps of a replacement. Hooks
// see each Step once it is done.
type Step int

// The steps of a replacement, in order.
const (
	StepCreated   Step = iota + 1 // temporary file created
	StepWritten                   // all new bytes written
	StepSynced                    // temporary file synced, mode copied, closed
	StepBackedUp                  // previous executable kept as <exe>.old
	StepRenamed                   // temporary file renamed over the executable
	StepDirSynced                 // directory synced: the replacement is durable
)

var stepNames = map[Step]string{
	StepCreated:   "created",
	StepWritten:   "written",
	StepSynced:    "synced",
	StepBackedUp:  "backed-up",
	StepRenamed:   "renamed",
	StepDirSynced: "dir-synced",
}

// String returns the step's name.
func (s Step) String() string {
	if n, ok := stepNames[s]; ok {
		return n
	}
	return fmt.Sprintf("Step(%d)", int(s))
}

// A File is the temporary file being written.
type File interface {
	io.Writer
	Name() string
	Sync() error
	Chmod(fs.FileMode) error
	Close() error
}

// FS is the set of file-system calls a replacement makes. OS is the real
// one; tests wrap it to inject errors.
type FS interface {
	CreateTemp(dir, pattern string) (File, error)
	Open(name string) (io.ReadCloser, error)
	Stat(name string) (fs.FileInfo, error)
	Link(oldname, newname string) error
	Rename(oldname, newname string) error
	Remove(name string) error
	// SyncDir makes the directory's entries durable.
	SyncDir(dir string) error
}

// OS is the real file system.
type OS struct{}

// CreateTemp calls os.CreateTemp.
func (OS) CreateTemp(dir, pattern string) (File, error) { return os.CreateTemp(dir, pattern) }

// Open calls os.Open.
func (OS) Open(name string) (io.ReadCloser, error) { return os.Open(name) }

// Stat calls os.Stat.
func (OS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// Link calls os.Link.
func (OS) Link(oldname, newname string) error { return os.Link(oldname, newname) }

// Rename calls os.Rename.
func (OS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Remove calls os.Remove.
func (OS) Remove(name string) error { return os.Remove(name) }

// SyncDir opens dir and syncs it. File systems and systems that cannot sync
// a directory (Windows) are not an error.
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !isSyncUnsupported(err) {
		return err
	}
	return nil
}

// A Replacer replaces one executable file.
type Replacer struct {
	// Path is the executable to replace. It must exist.
	Path string
	// FS is the file system; nil means OS.
	FS FS
	// Hook, if set, is called after each step. Tests use it to crash or
	// fail between steps: a non-nil error aborts the replacement.
	Hook func(Step) error
}

func (r *Replacer) fs() FS {
	if r.FS == nil {
		return OS{}
	}
	return r.FS
}

func (r *Replacer) hook(s Step) error {
	if r.Hook == nil {
		return nil
	}
	if err := r.Hook(s); err != nil {
		return fmt.Errorf("after step %v: %w", s, err)
	}
	return nil
}

// ErrNotWritable means the executable's directory does not take the new
// file a replacement writes there.
var ErrNotWritable = errors.New("the executable's directory is not writable")

// Check reports, without changing anything, whether a replacement can
// start: the executable is a regular file and its directory takes a new
// file (it creates one and removes it). Its error wraps ErrNotWritable and
// says what to do when the directory is the problem.
func (r *Replacer) Check() error {
	p, err := r.Begin()
	if err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			dir := filepath.Dir(r.Path)
			return fmt.Errorf("%w: an update writes the new binary into %s and renames it over %s, but this process (user id %d) cannot create files there (%v): make the directory writable by the user the program runs as, or install the program in a directory that user owns",
				ErrNotWritable, dir, filepath.Base(r.Path), os.Getuid(), err)
		}
		return err
	}
	p.Abort()
	return nil
}

// Begin creates the temporary file next to the executable. The caller
// writes the new contents to the returned Pending and then calls Finish,
// and either Commit or Abort.
func (r *Replacer) Begin() (*Pending, error) {
	st, err := r.fs().Stat(r.Path)
	if err != nil {
		return nil, fmt.Errorf("executable: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("executable %s is not a regular file", r.Path)
	}
	dir, base := filepath.Split(r.Path)
	if dir == "" {
		dir = "."
	}
	f, err := r.fs().CreateTemp(dir, "."+base+tempMarker+"*")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file next to %s: %w", r.Path, err)
	}
	// The new file belongs to this process's user, who may not own the
	// old one (it runs it through group or other permissions): that user
	// must be able to read and run it, or the self-test and the restart
	// fail. Group and other permissions are kept as they were.
	p := &Pending{r: r, f: f, mode: st.Mode().Perm() | 0o500}
	if err := r.hook(StepCreated); err != nil {
		p.Abort()
		return nil, err
	}
	return p, nil
}

// Pending is a replacement in progress: the temporary file and what is left
// to do with it.
type Pending struct {
	r         *Replacer
	f         File
	mode      fs.FileMode
	n         int64
	closed    bool
	finished  bool
	done      bool // committed or aborted
	committed bool // renamed over the executable
}

// Committed reports whether the new file has been renamed over the
// executable. After a Commit error it tells whether the executable still
// holds the old binary (false) or already the new one (true, only the
// directory sync failed).
func (p *Pending) Committed() bool { return p.committed }

// Name returns the temporary file's path.
func (p *Pending) Name() string { return p.f.Name() }

// Write appends to the temporary file. Errors (such as a full disk) name the
// file.
func (p *Pending) Write(b []byte) (int, error) {
	if p.finished || p.done {
		return 0, errors.New("selfreplace: write after Finish")
	}
	n, err := p.f.Write(b)
	p.n += int64(n)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named once, below
		}
		return n, fmt.Errorf("writing %s: %w", p.f.Name(), err)
	}
	return n, nil
}

// Finish syncs the temporary file, gives it the executable's permission
// bits and closes it. After Finish the file is complete on disk and may be
// run; nothing has changed at the executable's path yet.
func (p *Pending) Finish() error {
	if p.finished {
		return nil
	}
	if err := p.r.hook(StepWritten); err != nil {
		return err
	}
	name := p.f.Name()
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", name, err)
	}
	if err := p.f.Chmod(p.mode); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", name, err)
	}
	p.closed = true
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", name, err)
	}
	p.finished = true
	return p.r.hook(StepSynced)
}

// Commit keeps the current executable as <exe>.old, renames the temporary
// file over the executable and syncs the directory. On error before the
// rename, the executable is unchanged and the temporary file is removed.
// An error after the rename (a failing directory sync) means the new binary
// is in place but may not survive a power loss.
func (p *Pending) Commit() error {
	if !p.finished {
		return errors.New("selfreplace: Commit before Finish")
	}
	if p.done {
		return errors.New("selfreplace: Commit after Commit or Abort")
	}
	fsys := p.r.fs()
	exe := p.r.Path
	if err := p.backup(); err != nil {
		p.Abort()
		return err
	}
	if err := p.r.hook(StepBackedUp); err != nil {
		p.Abort()
		return err
	}
	if err := renameOver(fsys, p.f.Name(), exe); err != nil {
		p.Abort()
		return fmt.Errorf("renaming %s over %s: %w", p.f.Name(), exe, err)
	}
	p.done = true
	p.committed = true
	if err := p.r.hook(StepRenamed); err != nil {
		return err
	}
	if err := fsys.SyncDir(filepath.Dir(exe)); err != nil {
		return fmt.Errorf("syncing directory %s: %w", filepath.Dir(exe), err)
	}
	return p.r.hook(StepDirSynced)
}

// backup makes <exe>.old a copy of the current executable, atomically: a
// hard link (or, where links are not possible, a synced copy) under a
// temporary name, renamed over any previous backup.
func (p *Pending) backup() error {
	fsys := p.r.fs()
	exe := p.r.Path
	old := exe + BackupSuffix
	tmp := old + tempMarker + fmt.Sprint(time.Now().UnixNano())
	if err := fsys.Link(exe, tmp); err != nil {
		// No hard links here (some file systems, Windows shares): copy.
		if err := copyFile(fsys, exe, filepath.Dir(exe), filepath.Base(tmp)); err != nil {
			return fmt.Errorf("keeping the previous binary as %s: %w", old, err)
		}
	}
	if err := fsys.Rename(tmp, old); err != nil {
		fsys.Remove(tmp)
		return fmt.Errorf("keeping the previous binary as %s: %w", old, err)
	}
	// When <exe>.old already is a link to the executable (an update failed
	// after this step before), rename does nothing and leaves tmp.
	fsys.Remove(tmp)
	return nil
}

// renameOver renames src over the running executable dst. On Unix that is
// one atomic rename. Windows refuses to replace a running executable but
// lets it be renamed away, so there dst moves aside first (to a name that
// CleanStale removes later) and comes back if the second rename fails.
func renameOver(fsys FS, src, dst string) error {
	if runtime.GOOS != "windows" {
		return fsys.Rename(src, dst)
	}
	aside := dst + BackupSuffix + tempMarker + "running-" + fmt.Sprint(time.Now().UnixNano())
	if err := fsys.Rename(dst, aside); err != nil {
		return err
	}
	if err := fsys.Rename(src, dst); err != nil {
		if rerr := fsys.Rename(aside, dst); rerr != nil {
			return fmt.Errorf("%w (and moving the executable back from %s failed: %v)", err, aside, rerr)
		}
		return err
	}
	// The old file goes now if nothing runs it; a running program's file
	// stays until CleanStale at the next start.
	fsys.Remove(aside)
	return nil
}

// isSyncUnsupported reports whether err says that a directory cannot be
// synced on this system, which is not a failure of the replacement.
func isSyncUnsupported(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EINVAL) ||
		errors.Is(err, syscall.EBADF) || runtime.GOOS == "windows"
}

// copyFile streams src into a new synced file dir/name, with src's mode.
func copyFile(fsys FS, src, dir, name string) (err error) {
	st, err := fsys.Stat(src)
	if err != nil {
		return err
	}
	in, err := fsys.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := fsys.CreateTemp(dir, name+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			fsys.Remove(out.Name())
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Chmod(st.Mode().Perm()); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return fsys.Rename(out.Name(), filepath.Join(dir, name))
}

// Abort removes the temporary file. It is safe to call at any time and more
// than once; after Commit succeeded it does nothing.
func (p *Pending) Abort() {
	if p.done {
		return
	}
	p.done = true
	if !p.closed {
		p.closed = true
		p.f.Close()
	}
	p.r.fs().Remove(p.f.Name())
}

// Written returns the number of bytes written so far through Write.
func (p *Pending) Written() int64 { return p.n }

// OSFile returns the temporary file when the replacement's FS is the
// operating system's, for a writer that writes it at offsets (p2p's
// Release.OpenFile), or nil. Bytes written through it do not count in
// Written; the file's offset must be left alone. It is closed by Finish
// or Abort.
func (p *Pending) OSFile() *os.File {
	if p.finished || p.done {
		return nil
	}
	f, _ := p.f.(*os.File)
	return f
}

// Restore puts the previous binary, <exe>.old as Commit kept it, back in
// place of the executable: a hard link to it (or a synced copy) under a
// temporary name is renamed over the executable, atomically, and the
// directory synced. <exe>.old stays. It is the rollback of a Commit.
func Restore(exe string, fsys FS) error {
	if fsys == nil {
		fsys = OS{}
	}
	old := exe + BackupSuffix
	st, err := fsys.Stat(old)
	if err != nil {
		return fmt.Errorf("restoring the previous binary: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("restoring the previous binary: %s is not a regular file", old)
	}
	dir := filepath.Dir(exe)
	tmp := filepath.Join(dir, "."+filepath.Base(exe)+tempMarker+"restore-"+fmt.Sprint(time.Now().UnixNano()))
	if err := fsys.Link(old, tmp); err != nil {
		if err := copyFile(fsys, old, dir, filepath.Base(tmp)); err != nil {
			return fmt.Errorf("restoring %s: %w", old, err)
		}
	}
	if err := renameOver(fsys, tmp, exe); err != nil {
		fsys.Remove(tmp)
		return fmt.Errorf("restoring %s over %s: %w", old, exe, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// CleanStale removes temporary files that a crashed replacement of exe left
// behind and that are older than age. It returns the paths removed. Younger
// ones may belong to a replacement still running in another process.
func CleanStale(exe string, age time.Duration) ([]string, error) {
	dir, base := filepath.Split(exe)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "."+base+tempMarker) && !strings.HasPrefix(n, base+BackupSuffix+tempMarker) {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		// A file moved aside because it was running (Windows) is garbage
		// once that program is gone, whatever its age; one that still runs
		// cannot be removed and stays.
		if time.Since(info.ModTime()) < age && !strings.Contains(n, tempMarker+"running-") {
			continue
		}
		p := filepath.Join(dir, n)
		if err := os.Remove(p); err == nil {
			removed = append(removed, p)
		}
	}
	return removed, nil
}
