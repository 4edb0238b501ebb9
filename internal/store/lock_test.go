package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// holderEnv makes the test binary, run again by TestLockAcrossProcesses,
// hold a database open instead of running tests.
const holderEnv = "CONSUL_MONITOR_STORE_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holderEnv); path != "" {
		s, err := Open(context.Background(), path)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("holding")
		// Held until killed, or until the parent closes stdin.
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		s.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holdInChild opens path in another process and returns once it holds it.
func holdInChild(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("child: %q %v", line, err)
	}
	return cmd
}

func TestLockAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	child := holdInChild(t, path)

	_, err := Open(context.Background(), path)
	var locked *LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("second writer: err %v, want a LockedError", err)
	}
	host, _ := os.Hostname()
	if locked.PID != child.Process.Pid || locked.Host != host || locked.Path != path {
		t.Errorf("holder %+v, want pid %d host %s path %s", locked, child.Process.Pid, host, path)
	}
	for _, part := range []string{path, fmt.Sprintf("process %d on host %s", child.Process.Pid, host)} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("message %q does not name %q", err, part)
		}
	}

	// kill -9: the kernel drops the lock with the process, and the stale
	// pid left in the file does not stop the next writer.
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	s := mustOpen(t, path)
	if pid, got := readHolder(LockPath(path)); pid != os.Getpid() || got != host {
		t.Errorf("lock file names %d on %s after takeover, want %d", pid, got, os.Getpid())
	}
	// And a clean Close hands the database on.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	holdInChild(t, path)
}

func TestLockWithinOneProcess(t *testing.T) {
	// flock belongs to an open file, so a second Open in the same process
	// is refused as well: tests that reopen must close first.
	path := filepath.Join(t.TempDir(), "history.db")
	s := mustOpen(t, path)
	if _, err := Open(context.Background(), path); !errors.As(err, new(*LockedError)) {
		t.Fatalf("second Open: %v", err)
	}
	s.Close()
	mustOpen(t, path)
}

func TestLockHolderNotWrittenYet(t *testing.T) {
	err := &LockedError{Path: "/x/h.db"}
	if !strings.Contains(err.Error(), "/x/h.db is in use by another process") {
		t.Error(err)
	}
}

func TestOpenNamesBadPaths(t *testing.T) {
	dir := t.TempDir()
	notSQLite := filepath.Join(dir, "notes.txt")
	short := filepath.Join(dir, "short")
	empty := filepath.Join(dir, "empty.db")
	file := filepath.Join(dir, "file")
	damaged := filepath.Join(dir, "damaged.db")
	for p, body := range map[string]string{
		notSQLite: "this is not a database, just some text", short: "SQL", empty: "", file: "x",
		damaged: "SQLite format 3\x00" + strings.Repeat("\xff", 200),
	} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, path, why string
	}{
		{"missing directory", filepath.Join(dir, "nope", "h.db"), "directory " + filepath.Join(dir, "nope") + " does not exist"},
		{"a directory", dir, "it is a directory"},
		{"not SQLite", notSQLite, "it is not an SQLite database"},
		{"shorter than a header", short, "it is not an SQLite database"},
		{"under a file", filepath.Join(file, "h.db"), file + " is not a directory"},
		{"damaged past its header", damaged, "it is not an SQLite database, or it is damaged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(context.Background(), tc.path)
			var pe *PathError
			if !errors.As(err, &pe) {
				t.Fatalf("err %v, want a PathError", err)
			}
			if !strings.Contains(err.Error(), "database "+tc.path+": ") || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("message %q, want the path %s and %q", err, tc.path, tc.why)
			}
		})
	}
	// An empty file is a database SQLite has not written yet.
	mustOpen(t, empty)
}

func TestOpenNamesReadOnlyPaths(t *testing.T) {
	dir := readOnlyMount(t, func(dir string) {
		s := mustOpen(t, filepath.Join(dir, "h.db"))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
	_, err := Open(context.Background(), filepath.Join(dir, "h.db"))
	if !errors.As(err, new(*PathError)) || !strings.Contains(err.Error(), "directory "+dir+" is not writable: read-only file system") {
		t.Errorf("read-only directory: %v", err)
	}

	// A read-only file in a writable directory: bind-mounted read-only on
	// itself, as root passes permission bits.
	path := filepath.Join(t.TempDir(), "h.db")
	s := mustOpen(t, path)
	s.Close()
	mountOrUnavailable(t, "--bind", path, path)
	t.Cleanup(func() { _ = exec.Command("umount", path).Run() })
	mountOrUnavailable(t, "-o", "remount,bind,ro", path)
	_, err = Open(context.Background(), path)
	if !errors.As(err, new(*PathError)) || !strings.Contains(err.Error(), "database "+path+": it is read-only") {
		t.Errorf("read-only file: %v", err)
	}
}

// readOnlyMount mounts a small tmpfs, lets fill write into it, then
// remounts it read-only.
func readOnlyMount(t *testing.T, fill func(dir string)) string {
	t.Helper()
	dir := t.TempDir()
	mountOrUnavailable(t, "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	fill(dir)
	mountOrUnavailable(t, "-o", "remount,ro", dir)
	return dir
}

// mountOrUnavailable runs mount, skipping the test where mounting is not
// allowed, except under CI=true, where it fails.
func mountOrUnavailable(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "mount", args...).CombinedOutput(); err != nil {
		why := fmt.Sprintf("mount %s: %v %s", strings.Join(args, " "), err, out)
		if os.Getenv("CI") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
}

// A database reached through a symlink (a /data link to a volume, a
// `current` directory link) is the same file, and one writer already holds
// it: a second must not start beside the link with a lock of its own.
func TestLockThroughASymlink(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "h.db")
	st, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	other := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(path, other); err != nil {
		t.Fatal(err)
	}
	linkedDir := filepath.Join(t.TempDir(), "data")
	if err := os.Symlink(dir, linkedDir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{other, filepath.Join(linkedDir, "h.db")} {
		second, err := Open(context.Background(), p)
		if err == nil {
			second.Close()
			t.Errorf("a second writer opened %s, a link to %s held by this one", p, path)
			continue
		}
		if !errors.As(err, new(*LockedError)) {
			t.Errorf("open %s: %v, want a LockedError", p, err)
		}
	}
}

// A hard link is the same database under another name, and SQLite keeps
// its WAL beside the name: a second writer there would commit into a WAL
// the first never reads, and the two histories diverge. It must be refused.
func TestLockThroughAHardLink(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "h.db")
	st, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	other := filepath.Join(dir, "other.db")
	if err := os.Link(path, other); err != nil {
		t.Fatal(err)
	}
	second, err := Open(context.Background(), other)
	if err == nil {
		second.Close()
		t.Fatalf("a second writer opened %s, a hard link to %s held by this one", other, path)
	}
	if !errors.As(err, new(*LockedError)) {
		t.Fatalf("open %s: %v, want a LockedError", other, err)
	}
}
