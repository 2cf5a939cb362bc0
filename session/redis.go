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

// RedisStore keeps sessions in Redis, one string key per session holding the
// JSON record, with the key's own expiry as the session's. Every replica
// pointing at the same Redis (and prefix) shares the sessions.
type RedisStore struct {
	client redis.UniversalClient
	prefix string
}

var (
	_ Store   = (*RedisStore)(nil)
	_ Toucher = (*RedisStore)(nil)
	_ Pinger  = (*RedisStore)(nil)
)

// NewRedisStore returns a store using client, with keys prefix+ID; an empty
// prefix means [DefaultRedisPrefix]. The caller owns client and closes it.
// Timeouts and retries are the client's. For a quick 503 during an outage
// keep them short: go-redis by default retries a refused dial 5 times 100ms
// apart and a failed command 3 times, so each session request would take
// one to two seconds to fail; DialerRetries 1, MaxRetries 1 and a DialTimeout
// of a second or so make it fail in milliseconds.
func NewRedisStore(client redis.UniversalClient, prefix string) *RedisStore {
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return &RedisStore{client: client, prefix: prefix}
}

// Load implements [Store]. A record that is not valid JSON is reported as
// ErrNotFound so that its session starts afresh.
func (s *RedisStore) Load(ctx context.Context, id string) (Data, error) {
	b, err := s.client.Get(ctx, s.prefix+id).Bytes()
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
	if err := s.client.Set(ctx, s.prefix+id, b, ttl).Err(); err != nil {
		return unavailable("set", err)
	}
	return nil
}

// Touch implements [Toucher] with PEXPIRE.
func (s *RedisStore) Touch(ctx context.Context, id string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("session: redis: ttl %v is not positive", ttl)
	}
	ok, err := s.client.PExpire(ctx, s.prefix+id, ttl).Result()
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
	if err := s.client.Del(ctx, s.prefix+id).Err(); err != nil {
		return unavailable("del", err)
	}
	return nil
}

// Ping implements [Pinger] with the PING command.
func (s *RedisStore) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

func unavailable(op string, err error) error {
	return &unavailableError{msg: "session: redis " + op, err: err}
}
