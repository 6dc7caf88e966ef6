package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ClaimLease is how long a pending uniqueness claim is trusted without
// checking its owner: longer than any write transaction should take. A
// pending claim older than this is verified against its owner row, and
// dropped if the owner never committed (a crash between claim and commit).
const ClaimLease = 30 * time.Second

// OwnerHolds reports whether the row owner (on its own shard) really holds
// value. Claim calls it to settle a conflicting claim that may be stale.
type OwnerHolds func(ctx context.Context, owner ID, value string) (bool, error)

// Claim reserves value in namespace (e.g. "user.email") for the row owner,
// in the catalog's uniqueness index, so that two shards can never accept
// the same value. The write protocol, which Store follows:
//
//  1. begin the write on the owner's shard (the row gets its ID);
//  2. Claim(namespace, value, owner) — ErrTaken means roll back;
//  3. commit on the shard (on failure, ReleaseClaim);
//  4. ConfirmClaim.
//
// Concurrent claims of one value are serialized by the catalog's primary
// key: exactly one wins. A conflicting claim that may be stale (its owner
// crashed before committing, or released the value without releasing the
// claim) is checked with holds and taken over only if the owner does not
// hold the value. Claiming a value the owner already holds succeeds.
func (c *Cluster) Claim(ctx context.Context, namespace, value string, owner ID, holds OwnerHolds) error {
	for range 5 {
		var inserted bool
		err := c.catalog.QueryRow(ctx, `INSERT INTO unique_claims (namespace, value, owner) VALUES ($1, $2, $3)
			ON CONFLICT (namespace, value) DO NOTHING RETURNING true`, namespace, value, int64(owner)).Scan(&inserted)
		if err == nil {
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("claim %s %q: %w", namespace, value, err)
		}
		var (
			have      int64
			committed bool
			leased    bool
		)
		err = c.catalog.QueryRow(ctx, `SELECT owner, committed, claimed_at > now() - make_interval(secs => $3)
			FROM unique_claims WHERE namespace = $1 AND value = $2`, namespace, value, ClaimLease.Seconds()).Scan(&have, &committed, &leased)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // released meanwhile: try again
		}
		if err != nil {
			return fmt.Errorf("claim %s %q: read the existing claim: %w", namespace, value, err)
		}
		if ID(have) == owner {
			return nil
		}
		if !committed && leased {
			return fmt.Errorf("claim %s %q: %w (by id %d, being written now)", namespace, value, ErrTaken, have)
		}
		held, err := holds(ctx, ID(have), value)
		if err != nil {
			return fmt.Errorf("claim %s %q: check the current owner %d: %w", namespace, value, have, err)
		}
		if held {
			if !committed {
				_ = c.ConfirmClaim(ctx, namespace, value, ID(have))
			}
			return fmt.Errorf("claim %s %q: %w (by id %d)", namespace, value, ErrTaken, have)
		}
		c.log.InfoContext(ctx, "dropping a stale uniqueness claim", "namespace", namespace, "owner", have, "committed", committed)
		if _, err := c.catalog.Exec(ctx, `DELETE FROM unique_claims WHERE namespace = $1 AND value = $2 AND owner = $3 AND committed = $4`,
			namespace, value, have, committed); err != nil {
			return fmt.Errorf("claim %s %q: drop stale claim: %w", namespace, value, err)
		}
	}
	return fmt.Errorf("claim %s %q: %w (the claim kept changing; try again)", namespace, value, ErrTaken)
}

// ConfirmClaim marks owner's claim as committed, after its write committed.
func (c *Cluster) ConfirmClaim(ctx context.Context, namespace, value string, owner ID) error {
	if _, err := c.catalog.Exec(ctx, `UPDATE unique_claims SET committed = true WHERE namespace = $1 AND value = $2 AND owner = $3`,
		namespace, value, int64(owner)); err != nil {
		return fmt.Errorf("confirm claim %s %q: %w", namespace, value, err)
	}
	return nil
}

// ReleaseClaim frees value if owner holds the claim (after the owner's
// delete or change committed, or when its write failed).
func (c *Cluster) ReleaseClaim(ctx context.Context, namespace, value string, owner ID) error {
	if _, err := c.catalog.Exec(ctx, `DELETE FROM unique_claims WHERE namespace = $1 AND value = $2 AND owner = $3`,
		namespace, value, int64(owner)); err != nil {
		return fmt.Errorf("release claim %s %q: %w", namespace, value, err)
	}
	return nil
}

// ClaimOwner is the owner of value in namespace, or ErrNotFound. It is also
// a global secondary index: the owner ID routes to the row's shard.
func (c *Cluster) ClaimOwner(ctx context.Context, namespace, value string) (ID, error) {
	var owner int64
	err := c.catalog.QueryRow(ctx, `SELECT owner FROM unique_claims WHERE namespace = $1 AND value = $2`, namespace, value).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("look up %s %q: %w", namespace, value, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("look up %s %q: %w", namespace, value, err)
	}
	return ID(owner), nil
}
