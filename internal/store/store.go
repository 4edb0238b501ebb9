// Package store keeps consul-monitor's history in SQLite: the catalog as last
// seen, a row per check status change, and the periods in which Consul was
// observed. Growth follows status changes, not polls.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrNotFound is returned for an instance the database has never seen.
var ErrNotFound = errors.New("not found")

// Store is the history database.
type Store struct {
	// writer has a single connection: SQLite takes one writer at a time, and
	// queueing in Go is cheaper than retrying on SQLITE_BUSY.
	writer *sql.DB
	reader *sql.DB
	path   string

	// recordMu makes Record calls one at a time; the fields below it are the
	// database's current rows, kept in memory so that a poll is compared
	// with them instead of re-read, and are touched only by Record.
	recordMu   sync.Mutex
	instances  map[instanceKey]*storedInstance
	checks     map[checkKey]*storedCheck
	generation uint64

	// current is what /api/services shows, rebuilt only when a poll changes
	// something, so that readers never wait for a poll.
	current atomic.Pointer[Published]
	// openObservation is the observations row the watcher is extending, or
	// 0 when the last attempt to observe Consul failed or none was made
	// since start. History ends at its end while it is open (HistoryEnd).
	openObservation atomic.Int64
	// lastRecordedMs is the last certified moment recorded, in Unix
	// milliseconds; 0 for an empty database.
	lastRecordedMs atomic.Int64
	// floorMs is the newest time any row was recorded at; no row is ever
	// written before it. clockMs is the newest time an Apply was recorded
	// at, and clockBehind is set while the clock is behind it, so that a
	// step is logged once. All three are guarded by recordMu.
	floorMs     int64
	clockMs     int64
	clockBehind bool

	// Retention is how far back history is kept, where incidents begin;
	// 0 means DefaultRetention.
	Retention time.Duration
	incidents incidentsCache

	// Log receives the store's warnings; nil means slog.Default().
	Log *slog.Logger

	// probe is a connection of its own for ProbeWrite, with a short busy
	// timeout, so that a probe neither queues behind a long write nor waits
	// the writer's full busy timeout on a lock.
	probeOnce sync.Once
	probe     *sql.DB
	probeErr  error

	// lock is held from Open to Close, so that one process writes.
	lock *dbLock
}

func (s *Store) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Open opens or creates the database at path and brings its schema up to
// date. It takes the lock beside the file for the Store's lifetime: while
// another process holds it, Open returns a *LockedError. A path that cannot
// hold the database gives a *PathError saying why.
func Open(ctx context.Context, path string) (*Store, error) {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // errors name the file wherever the process was started
	}
	// The lock sits beside the real file, not beside a link to it, so that
	// two paths to one database meet at one lock.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	held, err := lock(path)
	if err != nil {
		return nil, err
	}
	s, err := open(ctx, path)
	if err != nil {
		held.release()
		return nil, explainOpenError(path, err)
	}
	s.lock = held
	return s, nil
}

func open(ctx context.Context, path string) (*Store, error) {
	// busy_timeout comes first so that the pragmas after it wait for a
	// lock instead of failing.
	base := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)"
	writer, err := sql.Open("sqlite", base+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetConnMaxIdleTime(0)
	s := &Store{writer: writer, path: path}
	if err := s.migrate(ctx); err != nil {
		writer.Close()
		return nil, err
	}
	reader, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: open %s for reading: %w", path, err)
	}
	reader.SetMaxOpenConns(4)
	s.reader = reader
	if err := s.loadCurrent(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database. A Record in progress finishes first.
func (s *Store) Close() error {
	s.recordMu.Lock()
	defer s.recordMu.Unlock()
	var errs []error
	if s.probe != nil {
		errs = append(errs, s.probe.Close())
	}
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	errs = append(errs, s.writer.Close())
	// The lock goes last: a successor may write once the connections are shut.
	errs = append(errs, s.lock.release())
	s.lock = nil
	return errors.Join(errs...)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.reader.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// ProbeWriteTimeout bounds ProbeWrite: it waits this long for the write lock.
const ProbeWriteTimeout = 2 * time.Second

// ProbeWrite proves that the database takes writes now: it takes the write
// lock and commits a heartbeat row, within ProbeWriteTimeout. A lock held
// by another process, a full disk or a read-only file make it fail, where
// a read would still work.
func (s *Store) ProbeWrite(ctx context.Context) error {
	s.probeOnce.Do(func() {
		dsn := "file:" + (&url.URL{Path: s.path}).EscapedPath() +
			fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=synchronous(NORMAL)&_txlock=immediate", (ProbeWriteTimeout/2).Milliseconds())
		s.probe, s.probeErr = sql.Open("sqlite", dsn)
		if s.probe != nil {
			s.probe.SetMaxOpenConns(1)
		}
	})
	if s.probeErr != nil {
		return fmt.Errorf("store: write probe: %w", s.probeErr)
	}
	// SQLite gives up on the lock before the context ends, so that its
	// own error ("database is locked") is the one reported.
	ctx, cancel := context.WithTimeout(ctx, ProbeWriteTimeout)
	defer cancel()
	err := func() error {
		tx, err := s.probe.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `INSERT INTO secrets (name, value) VALUES ('write-probe', ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil {
		return fmt.Errorf("store: write probe: %w", err)
	}
	return nil
}

// migrate applies the embedded migrations not yet recorded, each in a
// transaction of its own.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
	)`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	seen := map[int]string{}
	for _, name := range names {
		version, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, "migrations/"), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("store: migration %s has no version number", name)
		}
		// Two files with one number would make the second one silently
		// skipped wherever the first was applied.
		if other, dup := seen[version]; dup {
			return fmt.Errorf("store: migrations %s and %s share version %d", other, name, version)
		}
		seen[version] = name
		if err := s.applyMigration(ctx, name, version); err != nil {
			return fmt.Errorf("store: migration %s: %w", name, err)
		}
	}
	return nil
}

func (s *Store) applyMigration(ctx context.Context, name string, version int) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var applied int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = ?", version).Scan(&applied); err != nil {
		return err
	}
	if applied > 0 {
		return nil
	}
	body, err := migrations.ReadFile(name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version) VALUES (?)", version); err != nil {
		return err
	}
	return tx.Commit()
}

// SigningKey returns the key that signs settings cookies, creating it on
// first use. It lives in the database so that cookies survive restarts and
// no secret is ever part of the code.
func (s *Store) SigningKey(ctx context.Context) ([]byte, error) {
	const name = "settings-cookie-key"
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	if _, err := s.writer.ExecContext(ctx, "INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", name, fresh); err != nil {
		return nil, fmt.Errorf("store: create signing key: %w", err)
	}
	var key []byte
	if err := s.writer.QueryRowContext(ctx, "SELECT value FROM secrets WHERE name = ?", name).Scan(&key); err != nil {
		return nil, fmt.Errorf("store: read signing key: %w", err)
	}
	return key, nil
}
