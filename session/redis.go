package session

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix is the key prefix of [NewRedisStore] when given "".
const DefaultRedisPrefix = "shoal:session:"

// DefaultRedisTimeout bounds each call of a [RedisStore], retries
// included, unless [WithTimeout] says otherwise. A session read or write
// on a healthy Redis takes well under a millisecond; a few hundred
// milliseconds is an outage, and the client is better served by a 503
// than by a wait.
const DefaultRedisTimeout = 300 * time.Millisecond

// RedisStore keeps sessions in Redis, one string key per session holding
// its record, with the key's own expiry as the session's. Every replica
// pointing at the same Redis (and prefix) shares the sessions.
//
// A request that only reads its session costs one round trip:
// [RedisStore.Refresh] reads the record and, when due, pushes its expiry
// in one Lua script (EVALSHA; after Redis lost its script cache, once
// more with EVAL), so the Redis user needs the scripting commands as well
// as GET, SET, PEXPIRE, DEL and PING. A request that changes its session
// adds the SET of its record.
//
// Records are written in a compact binary form and read in it or in the
// JSON earlier versions wrote, so sessions survive the upgrade. A replica
// of an earlier version cannot read the new form: while both run, a
// session a new replica saved looks absent (signed out) to an old one.
//
// Each call has a deadline ([WithTimeout]), and a circuit breaker
// ([WithBreaker]) fails calls at once, with errors wrapping
// [ErrUnavailable] and [ErrBreakerOpen], after a few have failed in a row,
// so that a Redis that is down or hung costs each request microseconds,
// not a timeout. [RedisStore.Ping] always tries Redis, and its success
// closes the breaker.
type RedisStore struct {
	client  redis.UniversalClient
	refresh *redis.Script
	prefix  string
	timeout time.Duration // 0: the caller's context only
	breaker *breaker      // nil: none
}

var (
	_ Store     = (*RedisStore)(nil)
	_ Toucher   = (*RedisStore)(nil)
	_ Refresher = (*RedisStore)(nil)
	_ Pinger    = (*RedisStore)(nil)
)

// refreshScript is [RedisStore.Refresh] on the Redis side, atomic and in
// one round trip: GET, and PEXPIRE to ARGV[1] ms when no more than
// ARGV[2] ms are left (or the key has no expiry). It answers nil for a
// missing key, else {record, 1 if it pushed the expiry else 0}.
const refreshScript = `local v = redis.call('GET', KEYS[1])
if not v then return false end
local left = redis.call('PTTL', KEYS[1])
if left < 0 or left <= tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return {v, 1}
end
return {v, 0}`

// RedisOption adjusts [NewRedisStore].
type RedisOption func(*redisOptions)

type redisOptions struct {
	timeout   time.Duration
	threshold int
	cooldown  time.Duration
	now       func() time.Time
}

// WithTimeout bounds each call, retries included: zero means
// [DefaultRedisTimeout], negative means only the caller's context bounds
// it. go-redis ignores context deadlines on a connection unless its
// Options.ContextTimeoutEnabled is set; without that, a hung Redis holds a
// call for the client's ReadTimeout (3s by default) per try whatever the
// deadline says, so set it, or keep ReadTimeout and WriteTimeout as short.
func WithTimeout(d time.Duration) RedisOption {
	return func(o *redisOptions) { o.timeout = d }
}

// WithBreaker sets the circuit breaker: it opens after threshold calls in
// a row failed (zero means [DefaultBreakerThreshold], negative turns the
// breaker off) and, once open, lets a trial call through every cooldown
// (zero means [DefaultBreakerCooldown]).
func WithBreaker(threshold int, cooldown time.Duration) RedisOption {
	return func(o *redisOptions) { o.threshold, o.cooldown = threshold, cooldown }
}

// NewRedisStore returns a store using client, with keys prefix+ID; an empty
// prefix means [DefaultRedisPrefix]. The caller owns client and closes it.
// Retries are the client's and count against [WithTimeout]'s deadline;
// go-redis by default retries a refused dial 5 times 100ms apart, so
// DialerRetries 1 and MaxRetries 1 keep a dead Redis from eating the whole
// deadline of the first calls.
func NewRedisStore(client redis.UniversalClient, prefix string, opts ...RedisOption) *RedisStore {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	var o redisOptions
	for _, opt := range opts {
		opt(&o)
	}
	s := &RedisStore{client: client, refresh: redis.NewScript(refreshScript), prefix: prefix, timeout: o.timeout}
	switch {
	case o.timeout == 0:
		s.timeout = DefaultRedisTimeout
	case o.timeout < 0:
		s.timeout = 0
	}
	if o.threshold >= 0 {
		s.breaker = newBreaker(o.threshold, o.cooldown, o.now)
	}
	return s
}

// Degraded reports whether the breaker is open: the store failed
// repeatedly and calls fail without being tried.
func (s *RedisStore) Degraded() bool { return s.breaker != nil && s.breaker.open() }

// call runs f, which talks to Redis, under the store's deadline and
// breaker. f's error is returned as is, with a note when the deadline
// ran out; redis.Nil counts as an answer.
func (s *RedisStore) call(ctx context.Context, op string, f func(context.Context) error) error {
	trial := false
	if s.breaker != nil {
		var ok bool
		if ok, trial = s.breaker.allow(); !ok {
			return unavailable(op, ErrBreakerOpen)
		}
	}
	return s.try(ctx, f, trial)
}

// try runs f under the deadline and tells the breaker what came of it.
func (s *RedisStore) try(ctx context.Context, f func(context.Context) error, trial bool) error {
	cctx := ctx
	if s.timeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	err := f(cctx)
	o := answered
	switch {
	case err == nil || errors.Is(err, redis.Nil):
	case ctx.Err() != nil:
		o = unknown // the caller gave up: nothing learnt about Redis
	default:
		o = failed
		if cctx.Err() != nil {
			err = fmt.Errorf("no answer within %v: %w", s.timeout, err)
		}
	}
	if s.breaker != nil {
		s.breaker.done(o, trial)
	}
	return err
}

// Load implements [Store]. A record that cannot be decoded is reported as
// ErrNotFound so that its session starts afresh.
func (s *RedisStore) Load(ctx context.Context, id string) (Data, error) {
	var rec string
	err := s.call(ctx, "get", func(ctx context.Context) (err error) {
		rec, err = s.client.Get(ctx, s.prefix+id).Result()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return Data{}, ErrNotFound
	}
	if err != nil {
		return Data{}, unavailable("get", err)
	}
	return decodeRecord(rec)
}

// Refresh implements [Refresher] with one script call (see
// [RedisStore]): the expiry is pushed on the Redis side, by Redis's
// clock. A record that cannot be decoded is reported as ErrNotFound.
func (s *RedisStore) Refresh(ctx context.Context, id string, ttl, refreshAfter time.Duration) (Data, bool, error) {
	if ttl <= 0 {
		return Data{}, false, fmt.Errorf("session: redis: ttl %v is not positive", ttl)
	}
	left := int64(math.MaxInt64) // push whatever is left
	if refreshAfter > 0 {
		left = (ttl - refreshAfter).Milliseconds()
	}
	var res []any
	err := s.call(ctx, "refresh", func(ctx context.Context) (err error) {
		res, err = s.refresh.Run(ctx, s.client, []string{s.prefix + id}, ms(ttl), left).Slice()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return Data{}, false, ErrNotFound
	}
	if err != nil {
		return Data{}, false, unavailable("refresh", err)
	}
	var rec string
	var pushed int64
	ok := len(res) == 2
	if ok {
		rec, ok = res[0].(string)
	}
	if ok {
		pushed, ok = res[1].(int64)
	}
	if !ok {
		return Data{}, false, unavailable("refresh", fmt.Errorf("unexpected reply %v", res))
	}
	d, err := decodeRecord(rec)
	return d, pushed == 1, err
}

func decodeRecord(rec string) (Data, error) {
	d, err := parseRecord(rec)
	if err != nil {
		return Data{}, fmt.Errorf("session: redis: corrupt record (%v): %w", err, ErrNotFound)
	}
	return d, nil
}

// ms is d in whole milliseconds, at least one, as PEXPIRE takes it.
func ms(d time.Duration) int64 { return max(d.Milliseconds(), 1) }

// Save implements [Store]. Values that are not valid JSON are refused.
func (s *RedisStore) Save(ctx context.Context, id string, d Data, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("session: redis: ttl %v is not positive", ttl)
	}
	if err := d.validate(); err != nil {
		return fmt.Errorf("session: redis: %w", err)
	}
	b := appendRecord(make([]byte, 0, recordLen(d)), d)
	if err := s.call(ctx, "set", func(ctx context.Context) error {
		return s.client.Set(ctx, s.prefix+id, b, ttl).Err()
	}); err != nil {
		return unavailable("set", err)
	}
	return nil
}

// Touch implements [Toucher] with PEXPIRE.
func (s *RedisStore) Touch(ctx context.Context, id string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("session: redis: ttl %v is not positive", ttl)
	}
	var ok bool
	err := s.call(ctx, "pexpire", func(ctx context.Context) (err error) {
		ok, err = s.client.PExpire(ctx, s.prefix+id, ttl).Result()
		return err
	})
	if err != nil {
		return unavailable("pexpire", err)
	}
	if !ok {
		return ErrNotFound
	}
	return nil
}

// Delete implements [Store].
func (s *RedisStore) Delete(ctx context.Context, id string) error {
	if err := s.call(ctx, "del", func(ctx context.Context) error {
		return s.client.Del(ctx, s.prefix+id).Err()
	}); err != nil {
		return unavailable("del", err)
	}
	return nil
}

// Ping implements [Pinger] with the PING command. It goes to Redis even
// while the breaker is open, so that a readiness check both reports the
// truth and, by succeeding, closes the breaker as soon as Redis is back.
func (s *RedisStore) Ping(ctx context.Context) error {
	if err := s.try(ctx, func(ctx context.Context) error {
		return s.client.Ping(ctx).Err()
	}, false); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

func unavailable(op string, err error) error {
	return &unavailableError{msg: "session: redis " + op, err: err}
}
