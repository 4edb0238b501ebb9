package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// LockedError is returned by Open when another process holds the database's
// lock: two writers would record overlapping observation periods, which
// history would then count twice.
type LockedError struct {
	// Path is the database file.
	Path string
	// PID and Host name the holder, as it wrote them into the lock file;
	// PID is 0 when the holder had not written them yet.
	PID  int
	Host string
	// Elsewhere is set when the holder opened the same file under another
	// name (a hard link), whose lock file this one cannot read.
	Elsewhere bool
}

func (e *LockedError) Error() string {
	holder := "another process (its pid and host are not written yet)"
	switch {
	case e.Elsewhere:
		holder = "another process that opened it under another name (a hard link)"
	case e.PID != 0:
		holder = fmt.Sprintf("process %d on host %s", e.PID, e.Host)
	}
	return fmt.Sprintf("database %s is in use by %s; only one consul-monitor may write to a database (lock file %s)", e.Path, holder, LockPath(e.Path))
}

// LockPath is the lock file kept beside the database at dbPath.
func LockPath(dbPath string) string { return dbPath + ".lock" }

// dbLock is a held lock. The kernel drops a flock when its holder dies, so a
// kill -9 leaves a file with a stale pid in it but no lock: the next process
// takes it and writes its own pid. The file is never removed, since removing
// it would let a third process lock a new file while the second still holds
// the old one.
//
// The database file itself is locked too: a hard link reaches the same file
// under a name with a lock file of its own.
type dbLock struct{ f, db *os.File }

// lock takes the lock beside dbPath without waiting, and writes the pid
// and host into it for whoever finds it taken.
func lock(dbPath string) (*dbLock, error) {
	path := LockPath(dbPath)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, pathError(dbPath, "its lock file "+path+" cannot be created", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			held := &LockedError{Path: dbPath}
			held.PID, held.Host = readHolder(path)
			return nil, held
		}
		return nil, pathError(dbPath, "its lock file "+path+" cannot be locked", err)
	}
	// flock and SQLite's own fcntl locks do not interact on Linux.
	db, err := os.OpenFile(dbPath, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		f.Close()
		return nil, pathError(dbPath, "it cannot be opened", err)
	}
	if err := syscall.Flock(int(db.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		db.Close()
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Path: dbPath, Elsewhere: true}
		}
		return nil, pathError(dbPath, "it cannot be locked", err)
	}
	host, _ := os.Hostname()
	if err := writeHolder(f, os.Getpid(), host); err != nil {
		db.Close()
		f.Close()
		return nil, pathError(dbPath, "its lock file "+path+" cannot be written", err)
	}
	return &dbLock{f: f, db: db}, nil
}

func writeHolder(f *os.File, pid int, host string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(fmt.Sprintf("%d %s\n", pid, host)), 0)
	return err
}

// readHolder reads "pid host" from a lock file; 0 and "" when it is not
// written yet.
func readHolder(path string) (int, string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, ""
	}
	pidText, host, _ := strings.Cut(string(bytes.TrimSpace(b)), " ")
	pid, err := strconv.Atoi(pidText)
	if err != nil {
		return 0, ""
	}
	return pid, host
}

// release drops the lock. The file stays (see dbLock).
func (l *dbLock) release() error {
	if l == nil {
		return nil
	}
	return errors.Join(l.db.Close(), l.f.Close())
}

// PathError is returned by Open for a database path that cannot be used,
// saying why in words an operator can act on.
type PathError struct {
	Path   string
	Reason string
	Err    error
}

func (e *PathError) Error() string {
	msg := fmt.Sprintf("database %s: %s", e.Path, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *PathError) Unwrap() error { return e.Err }

func pathError(path, reason string, err error) *PathError {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is already in the message
	}
	return &PathError{Path: path, Reason: reason, Err: err}
}

// sqliteHeader starts every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// checkPath tells why the database cannot live at path, before SQLite
// turns the reason into something vaguer ("unable to open database file").
// A missing file is fine: Open creates it.
func checkPath(path string) error {
	dir := filepath.Dir(path)
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return pathError(path, "directory "+dir+" does not exist", nil)
	case err != nil:
		return pathError(path, "directory "+dir+" cannot be read", err)
	case !info.IsDir():
		return pathError(path, dir+" is not a directory", nil)
	}
	// SQLite writes its -wal and -shm files and the lock beside the database,
	// so the directory must take writes too. access(2) answers for the caller,
	// root included: root passes permission bits but not a read-only mount.
	if err := syscall.Access(dir, accessW|accessX); err != nil {
		return pathError(path, "directory "+dir+" is not writable", err)
	}
	info, err = os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return pathError(path, "it cannot be read", err)
	}
	if info.IsDir() {
		return pathError(path, "it is a directory, not a file", nil)
	}
	if !info.Mode().IsRegular() {
		return pathError(path, "it is not a regular file", nil)
	}
	f, err := os.Open(path)
	if err != nil {
		return pathError(path, "it cannot be read", err)
	}
	defer f.Close()
	head := make([]byte, len(sqliteHeader))
	n, _ := f.Read(head)
	// SQLite takes an empty file as a new database.
	if n > 0 && !bytes.Equal(head[:n], sqliteHeader) || n > 0 && n < len(sqliteHeader) {
		return pathError(path, "it is not an SQLite database", nil)
	}
	if err := syscall.Access(path, accessW); err != nil {
		return pathError(path, "it is read-only", err)
	}
	return nil
}

// explainOpenError names the path and the reason for what SQLite found
// only once it read the file: checkPath cannot see a damaged file.
func explainOpenError(path string, err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	// The primary result code is the low byte of an extended one.
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return pathError(path, "it is not an SQLite database, or it is damaged", err)
	case sqlite3.SQLITE_READONLY:
		return pathError(path, "it is read-only", err)
	case sqlite3.SQLITE_CANTOPEN:
		return pathError(path, "it cannot be opened", err)
	case sqlite3.SQLITE_FULL:
		return pathError(path, "the disk is full", err)
	}
	return err
}

// access(2) modes, which package syscall does not name.
const (
	accessX = 0x1
	accessW = 0x2
)
