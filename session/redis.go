package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// RedisStore keeps sessions in Redis, one string key per session holding the
// JSON record, with the key's own expiry as the session's. Every replica
// pointing at the same Redis (and prefix) shares the sessions.
//
// Each call has a deadline ([WithTimeout]), and a circuit breaker
// ([WithBreaker]) fails calls at once, with errors wrapping
// [ErrUnavailable] and [ErrBreakerOpen], after a few have failed in a row,
// so that a Redis that is down or hung costs each request microseconds,
// not a timeout. [RedisStore.Ping] always tries Redis, and its success
// closes the breaker.
type RedisStore struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration // 0: the caller's context only
	breaker *breaker      // nil: none
}

var (
	_ Store   = (*RedisStore)(nil)
	_ Toucher = (*RedisStore)(nil)
	_ Pinger  = (*RedisStore)(nil)
)

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
	s := &RedisStore{client: client, prefix: prefix, timeout: o.timeout}
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

// Load implements [Store]. A record that is not valid JSON is reported as
// ErrNotFound so that its session starts afresh.
func (s *RedisStore) Load(ctx context.Context, id string) (Data, error) {
	var b []byte
	err := s.call(ctx, "get", func(ctx context.Context) (err error) {
		b, err = s.client.Get(ctx, s.prefix+id).Bytes()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return Data{}, ErrNotFound
	}
	if err != nil {
		return Data{}, unavailable("get", err)
	}
	var d Data
	if err := json.Unmarshal(b, &d); err != nil {
		return Data{}, fmt.Errorf("session: redis: corrupt record (%v): %w", err, ErrNotFound)
	}
	return d, nil
}

// Save implements [Store].
func (s *RedisStore) Save(ctx context.Context, id string, d Data, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("session: redis: ttl %v is not positive", ttl)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("session: redis: encode record: %w", err)
	}
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
