package shardedapi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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

// claimant is the owner of a uniqueness claim: a row with a global ID
// (Store's users: id set, key "") or a row with a text key (DocumentStore's
// documents: id 0, key "collection/id"). The catalog stores both columns;
// the pair is the owner's identity.
type claimant struct {
	id  int64
	key string
}

func (o claimant) String() string {
	if o.key != "" {
		return strconv.Quote(o.key)
	}
	return "id " + strconv.FormatInt(o.id, 10)
}

// claimantHolds is OwnerHolds for either kind of owner.
type claimantHolds func(ctx context.Context, owner claimant, value string) (bool, error)

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
	_, err := c.claim(ctx, namespace, value, claimant{id: int64(owner)}, func(ctx context.Context, o claimant, v string) (bool, error) {
		if o.key != "" {
			return false, fmt.Errorf("claim %s %q: it is held by document %s, not by a row with an ID", namespace, v, o)
		}
		return holds(ctx, ID(o.id), v)
	})
	return err
}

// claim is Claim for any kind of owner. fresh reports whether this call
// created the claim (so a failed write should release it), as opposed to
// finding the owner already holding it.
func (c *Cluster) claim(ctx context.Context, namespace, value string, owner claimant, holds claimantHolds) (fresh bool, err error) {
	for range 5 {
		var inserted bool
		err := c.catalog.QueryRow(ctx, `INSERT INTO unique_claims (namespace, value, owner, owner_key) VALUES ($1, $2, $3, $4)
			ON CONFLICT (namespace, value) DO NOTHING RETURNING true`, namespace, value, owner.id, owner.key).Scan(&inserted)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return false, fmt.Errorf("claim %s %q: %w", namespace, value, err)
		}
		var (
			have      claimant
			committed bool
			leased    bool
		)
		err = c.catalog.QueryRow(ctx, `SELECT owner, owner_key, committed, claimed_at > now() - make_interval(secs => $3)
			FROM unique_claims WHERE namespace = $1 AND value = $2`, namespace, value, ClaimLease.Seconds()).Scan(&have.id, &have.key, &committed, &leased)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // released meanwhile: try again
		}
		if err != nil {
			return false, fmt.Errorf("claim %s %q: read the existing claim: %w", namespace, value, err)
		}
		if have == owner {
			return false, nil
		}
		if !committed && leased {
			return false, fmt.Errorf("claim %s %q: %w (by %s, being written now)", namespace, value, ErrTaken, have)
		}
		held, err := holds(ctx, have, value)
		if err != nil {
			return false, fmt.Errorf("claim %s %q: check the current owner %s: %w", namespace, value, have, err)
		}
		if held {
			if !committed {
				_ = c.confirmClaim(ctx, namespace, value, have)
			}
			return false, fmt.Errorf("claim %s %q: %w (by %s)", namespace, value, ErrTaken, have)
		}
		c.log.InfoContext(ctx, "dropping a stale uniqueness claim", "namespace", namespace, "owner", have.String(), "committed", committed)
		if _, err := c.catalog.Exec(ctx, `DELETE FROM unique_claims WHERE namespace = $1 AND value = $2 AND owner = $3 AND owner_key = $4 AND committed = $5`,
			namespace, value, have.id, have.key, committed); err != nil {
			return false, fmt.Errorf("claim %s %q: drop stale claim: %w", namespace, value, err)
		}
	}
	return false, fmt.Errorf("claim %s %q: %w (the claim kept changing; try again)", namespace, value, ErrTaken)
}

// ConfirmClaim marks owner's claim as committed, after its write committed.
func (c *Cluster) ConfirmClaim(ctx context.Context, namespace, value string, owner ID) error {
	return c.confirmClaim(ctx, namespace, value, claimant{id: int64(owner)})
}

func (c *Cluster) confirmClaim(ctx context.Context, namespace, value string, owner claimant) error {
	if _, err := c.catalog.Exec(ctx, `UPDATE unique_claims SET committed = true WHERE namespace = $1 AND value = $2 AND owner = $3 AND owner_key = $4`,
		namespace, value, owner.id, owner.key); err != nil {
		return fmt.Errorf("confirm claim %s %q: %w", namespace, value, err)
	}
	return nil
}

// ReleaseClaim frees value if owner holds the claim (after the owner's
// delete or change committed, or when its write failed).
func (c *Cluster) ReleaseClaim(ctx context.Context, namespace, value string, owner ID) error {
	return c.releaseClaim(ctx, namespace, value, claimant{id: int64(owner)})
}

func (c *Cluster) releaseClaim(ctx context.Context, namespace, value string, owner claimant) error {
	if _, err := c.catalog.Exec(ctx, `DELETE FROM unique_claims WHERE namespace = $1 AND value = $2 AND owner = $3 AND owner_key = $4`,
		namespace, value, owner.id, owner.key); err != nil {
		return fmt.Errorf("release claim %s %q: %w", namespace, value, err)
	}
	return nil
}

// ClaimOwner is the owner of value in namespace, or ErrNotFound. It is also
// a global secondary index: the owner ID routes to the row's shard. For a
// namespace of DocumentStore's unique fields (owned by documents, not by
// IDs) it is ErrNotFound; see DocumentStore.Lookup.
func (c *Cluster) ClaimOwner(ctx context.Context, namespace, value string) (ID, error) {
	o, err := c.claimOwner(ctx, namespace, value)
	if err != nil {
		return 0, err
	}
	if o.key != "" {
		return 0, fmt.Errorf("look up %s %q: %w (held by document %s)", namespace, value, ErrNotFound, o)
	}
	return ID(o.id), nil
}

func (c *Cluster) claimOwner(ctx context.Context, namespace, value string) (claimant, error) {
	var o claimant
	err := c.catalog.QueryRow(ctx, `SELECT owner, owner_key FROM unique_claims WHERE namespace = $1 AND value = $2`, namespace, value).Scan(&o.id, &o.key)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, fmt.Errorf("look up %s %q: %w", namespace, value, ErrNotFound)
	}
	if err != nil {
		return o, fmt.Errorf("look up %s %q: %w", namespace, value, err)
	}
	return o, nil
}
