package shardedapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// EntryCache is what Store needs from a cache-aside layer; *Cache
// implements it. Get returns the cached bytes for key or calls load once
// and caches its result (ErrNotFound included, briefly); Invalidate is
// called after every committed write.
type EntryCache interface {
	Get(ctx context.Context, key string, load func(ctx context.Context) ([]byte, error)) ([]byte, error)
	Invalidate(ctx context.Context, key string) error
}

var _ EntryCache = (*Cache)(nil)

// User is Store's example entity: a user account on the shard of its
// bucket, with a globally unique email.
type User struct {
	ID        ID        `json:"id"`
	Region    string    `json:"region,omitempty"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewUser is the input of CreateUser.
type NewUser struct {
	Region string // data-residency region ("" by default)
	Email  string // globally unique, compared case-insensitively
	Name   string
}

// UserChange is the input of UpdateUser: nil fields stay as they are.
type UserChange struct {
	Email *string
	Name  *string
}

// Limits on user fields; longer values are ErrInvalidValue.
const (
	MaxEmailLen = 254
	MaxNameLen  = 200
)

// emailNamespace is the uniqueness namespace of user emails.
const emailNamespace = "user.email"

// StoreOptions configure a Store. The zero value is a Store without cache.
type StoreOptions struct {
	// Cache is the cache-aside layer reads go through and writes
	// invalidate. Default nil: every read goes to the shard.
	Cache EntryCache
	// Logger receives the store's logs. Default: the Cluster's logger.
	Logger *slog.Logger
}

// Store is a concrete sharded entity store (users) built on Cluster: rows
// live on the shard of their bucket, reads go through the cache, writes
// commit on the shard and then invalidate, emails are unique across all
// shards, and a shard that is down fails only its own users.
type Store struct {
	c     *Cluster
	cache EntryCache
	log   *slog.Logger
}

// NewStore makes a Store over c. The shards need the schema of Migrate.
func NewStore(c *Cluster, opts StoreOptions) *Store {
	log := opts.Logger
	if log == nil {
		log = c.log
	}
	return &Store{c: c, cache: opts.Cache, log: log}
}

// UserCacheKey is the cache key of a user. The "v1" is the format of the
// cached JSON: a change to User's encoding bumps it.
func UserCacheKey(id ID) string { return "shardedapi:user:v1:" + id.String() }

func normalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	switch {
	case e == "":
		return "", fmt.Errorf("email: %w: empty", ErrInvalidValue)
	case len(e) > MaxEmailLen:
		return "", fmt.Errorf("email of %d bytes: %w: longer than %d bytes", len(e), ErrInvalidValue, MaxEmailLen)
	case !utf8.ValidString(e):
		return "", fmt.Errorf("email: %w: not valid UTF-8", ErrInvalidValue)
	case strings.Count(e, "@") != 1 || strings.HasPrefix(e, "@") || strings.HasSuffix(e, "@"):
		return "", fmt.Errorf("email %q: %w: want one @ between a local part and a domain", e, ErrInvalidValue)
	}
	return e, nil
}

func validateName(name string) error {
	switch {
	case len(name) > MaxNameLen:
		return fmt.Errorf("name of %d bytes: %w: longer than %d bytes", len(name), ErrInvalidValue, MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("name: %w: not valid UTF-8", ErrInvalidValue)
	}
	return nil
}

// CreateUser inserts a user on the shard of its email's bucket, claiming
// the email globally first; ErrTaken if another user (on any shard) has it.
func (s *Store) CreateUser(ctx context.Context, nu NewUser) (User, error) {
	email, err := normalizeEmail(nu.Email)
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	if err := validateName(nu.Name); err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	// The email picks the bucket once; the ID remembers it, so a later
	// email change does not move the row.
	loc, err := s.c.Locate(Key{Region: nu.Region, ID: email})
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	sh := loc.Shard
	u := User{Region: nu.Region, Email: email, Name: nu.Name}
	// Mint the ID first, then claim the email holding no shard connection
	// (the claim may read other owners' rows), then insert.
	var id int64
	if err := sh.pool.QueryRow(ctx, `SELECT shardedapi_next_id($1)`, loc.Bucket).Scan(&id); err != nil {
		return User{}, fmt.Errorf("create user: %w", sh.Err(ctx, "mint id", err))
	}
	u.ID = ID(id)
	if err := s.c.Claim(ctx, emailNamespace, email, u.ID, s.holdsEmail); err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	err = s.c.BucketTx(ctx, loc.Bucket, func(ctx context.Context, tx pgx.Tx, sh *Shard) error {
		// ON CONFLICT: a retry after a commit whose acknowledgement was
		// lost must not fail on its own row.
		err := tx.QueryRow(ctx, `INSERT INTO users (id, region, email, name) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id WHERE users.email = EXCLUDED.email
			RETURNING created_at, updated_at`, id, u.Region, u.Email, u.Name).Scan(&u.CreatedAt, &u.UpdatedAt)
		return sh.Err(ctx, "create user", err)
	})
	if err != nil {
		// The insert may have failed: free the email (if it did commit, a
		// later claim verifies the row and keeps the email taken).
		if rerr := s.c.ReleaseClaim(context.WithoutCancel(ctx), emailNamespace, email, u.ID); rerr != nil {
			s.log.WarnContext(ctx, "release email claim after a failed create; it will be verified on the next claim", "err", rerr)
		}
		return User{}, fmt.Errorf("create user: %w", err)
	}
	s.c.CountWrite(loc.Bucket)
	if err := s.c.ConfirmClaim(ctx, emailNamespace, email, u.ID); err != nil {
		s.log.WarnContext(ctx, "confirm email claim; it stays pending and is verified on conflict", "id", u.ID, "err", err)
	}
	s.invalidate(ctx, u.ID)
	return u, nil
}

// holdsEmail is the OwnerHolds of user emails: reads the owner's row on
// its shard, bypassing the cache.
func (s *Store) holdsEmail(ctx context.Context, owner ID, email string) (bool, error) {
	u, err := s.loadUser(ctx, owner)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return u.Email == email, nil
}

// User reads a user by ID, through the cache when the Store has one.
// A shard that is down fails only the users it owns, with an error that
// errors.Is ErrShardUnavailable.
func (s *Store) User(ctx context.Context, id ID) (User, error) {
	loc, err := s.c.LocateID(id)
	if err != nil {
		return User{}, fmt.Errorf("get user: %w", err)
	}
	s.c.CountRead(loc.Bucket)
	if s.cache == nil {
		return s.loadUser(ctx, id)
	}
	b, err := s.cache.Get(ctx, UserCacheKey(id), func(ctx context.Context) ([]byte, error) {
		u, err := s.loadUser(ctx, id)
		if err != nil {
			return nil, err
		}
		return json.Marshal(u)
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return User{}, fmt.Errorf("get user %d: %w", int64(id), ErrNotFound)
		}
		return User{}, fmt.Errorf("get user %d: %w", int64(id), err)
	}
	var u User
	if err := json.Unmarshal(b, &u); err != nil || u.ID != id {
		// A cached value that does not decode is never served; read the shard.
		s.log.WarnContext(ctx, "undecodable cached user; reading the shard", "id", id, "err", err)
		return s.loadUser(ctx, id)
	}
	return u, nil
}

const userColumns = `id, region, email, name, created_at, updated_at`

func scanUser(row pgx.Row) (User, error) {
	var u User
	var id int64
	err := row.Scan(&id, &u.Region, &u.Email, &u.Name, &u.CreatedAt, &u.UpdatedAt)
	u.ID = ID(id)
	return u, err
}

// loadUser reads a user from its shard (retrying once on a dead pooled
// connection, see Shard.readRetry).
func (s *Store) loadUser(ctx context.Context, id ID) (User, error) {
	loc, err := s.c.LocateID(id)
	if err != nil {
		return User{}, fmt.Errorf("load user: %w", err)
	}
	var u User
	err = s.c.onBucket(ctx, loc.Bucket, func(ctx context.Context, sh *Shard) error {
		err := sh.readRetry(ctx, func(ctx context.Context) error {
			var err error
			u, err = scanUser(sh.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`+readFenceSQL(2), int64(id), loc.Bucket))
			return err
		})
		if errors.Is(err, pgx.ErrNoRows) {
			if err := missOrMoved(ctx, sh, loc.Bucket); err != nil {
				return err
			}
			return fmt.Errorf("load user %d: %w", int64(id), ErrNotFound)
		}
		return sh.Err(ctx, "load user", err)
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// UserByEmail finds a user by email through the catalog's uniqueness index
// (which names the owner ID, hence its shard), then reads it like User.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	e, err := normalizeEmail(email)
	if err != nil {
		return User{}, fmt.Errorf("get user by email: %w", err)
	}
	owner, err := s.c.ClaimOwner(ctx, emailNamespace, e)
	if err != nil {
		return User{}, fmt.Errorf("get user by email: %w", err)
	}
	u, err := s.User(ctx, owner)
	if err != nil {
		return User{}, fmt.Errorf("get user by email: %w", err)
	}
	if u.Email != e {
		return User{}, fmt.Errorf("get user by email %q: %w", e, ErrNotFound)
	}
	return u, nil
}

// UpdateUser changes a user's name and/or email, committing on the shard
// and then invalidating the cache. A new email is claimed globally first
// (ErrTaken if someone has it) and the old one released after the commit.
func (s *Store) UpdateUser(ctx context.Context, id ID, ch UserChange) (User, error) {
	loc, err := s.c.LocateID(id)
	if err != nil {
		return User{}, fmt.Errorf("update user: %w", err)
	}
	var newEmail string
	if ch.Email != nil {
		if newEmail, err = normalizeEmail(*ch.Email); err != nil {
			return User{}, fmt.Errorf("update user %d: %w", int64(id), err)
		}
	}
	if ch.Name != nil {
		if err := validateName(*ch.Name); err != nil {
			return User{}, fmt.Errorf("update user %d: %w", int64(id), err)
		}
	}
	// Claim a new email before taking a row lock, holding no connection
	// (the claim may read other owners' rows). Claiming an email the user
	// already has is a no-op success.
	claimed := false
	if ch.Email != nil {
		if err := s.c.Claim(ctx, emailNamespace, newEmail, id, s.holdsEmail); err != nil {
			return User{}, fmt.Errorf("update user: %w", err)
		}
		claimed = true
	}
	var before, after User
	err = s.c.BucketTx(ctx, loc.Bucket, func(ctx context.Context, tx pgx.Tx, sh *Shard) error {
		var err error
		before, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1 FOR UPDATE`, int64(id)))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("user %d: %w", int64(id), ErrNotFound)
		}
		if err != nil {
			return sh.Err(ctx, "update user", err)
		}
		after = before
		if ch.Name != nil {
			after.Name = *ch.Name
		}
		if ch.Email != nil {
			after.Email = newEmail
		}
		err = tx.QueryRow(ctx, `UPDATE users SET email = $2, name = $3, updated_at = now() WHERE id = $1 RETURNING updated_at`,
			int64(id), after.Email, after.Name).Scan(&after.UpdatedAt)
		return sh.Err(ctx, "update user", err)
	})
	if claimed && before.Email == newEmail {
		claimed = false // the user already had it: nothing to confirm or release
	}
	if err != nil {
		if claimed {
			_ = s.c.ReleaseClaim(context.WithoutCancel(ctx), emailNamespace, newEmail, id)
		}
		return User{}, fmt.Errorf("update user: %w", err)
	}
	s.c.CountWrite(loc.Bucket)
	s.invalidate(ctx, id)
	if claimed {
		if err := s.c.ConfirmClaim(ctx, emailNamespace, newEmail, id); err != nil {
			s.log.WarnContext(ctx, "confirm email claim; it stays pending and is verified on conflict", "id", id, "err", err)
		}
		if err := s.c.ReleaseClaim(ctx, emailNamespace, before.Email, id); err != nil {
			s.log.WarnContext(ctx, "release old email claim; it is verified and dropped on the next claim", "id", id, "err", err)
		}
	}
	return after, nil
}

// DeleteUser deletes a user, invalidates its cache entry and releases its
// email. ErrNotFound if it does not exist.
func (s *Store) DeleteUser(ctx context.Context, id ID) error {
	loc, err := s.c.LocateID(id)
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	var email string
	err = s.c.BucketTx(ctx, loc.Bucket, func(ctx context.Context, tx pgx.Tx, sh *Shard) error {
		err := tx.QueryRow(ctx, `DELETE FROM users WHERE id = $1 RETURNING email`, int64(id)).Scan(&email)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("delete user %d: %w", int64(id), ErrNotFound)
		}
		return sh.Err(ctx, "delete user", err)
	})
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	s.c.CountWrite(loc.Bucket)
	s.invalidate(ctx, id)
	if err := s.c.ReleaseClaim(ctx, emailNamespace, email, id); err != nil {
		s.log.WarnContext(ctx, "release email claim after delete; it is verified and dropped on the next claim", "id", id, "err", err)
	}
	return nil
}

// invalidate deletes a user's cache entry after a committed write. The
// write has committed, so a cache error is logged, not returned: the cache
// layer retries the invalidation or its TTL bounds the staleness.
func (s *Store) invalidate(ctx context.Context, id ID) {
	if s.cache == nil {
		return
	}
	if err := s.cache.Invalidate(ctx, UserCacheKey(id)); err != nil {
		s.log.WarnContext(ctx, "invalidate cached user after a committed write", "id", id, "err", err)
	}
}

// UserPage is an answer of NewestUsers.
type UserPage struct {
	Users []User // newest first
	// Partial is true when some shards did not answer in time: Users then
	// lacks their rows. See Failures.
	Partial  bool
	Failures []ShardFailure
}

// NewestUsers lists the n newest users across all shards (scatter-gather:
// each shard's n newest, merged by ID, which sorts by creation time).
func (s *Store) NewestUsers(ctx context.Context, n int, opts GatherOptions) (UserPage, error) {
	if n < 1 || n > 1000 {
		return UserPage{}, fmt.Errorf("list newest users: %w: n is %d, want 1..1000", ErrInvalidValue, n)
	}
	g, err := Gather(ctx, s.c, opts, func(ctx context.Context, sh *Shard) (users []User, err error) {
		err = sh.readRetry(ctx, func(ctx context.Context) error {
			rows, err := sh.pool.Query(ctx, `SELECT `+userColumns+` FROM users WHERE true`+ownedRowsSQL("users")+` ORDER BY id DESC LIMIT $1`, n)
			if err != nil {
				return err
			}
			users, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
			return err
		})
		return users, err
	})
	if err != nil {
		return UserPage{}, fmt.Errorf("list newest users: %w", err)
	}
	slices.SortFunc(g.Items, func(a, b User) int { return cmp.Compare(b.ID, a.ID) })
	if len(g.Items) > n {
		g.Items = g.Items[:n]
	}
	return UserPage{Users: g.Items, Partial: g.Partial, Failures: g.Failures}, nil
}
