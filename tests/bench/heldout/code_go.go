// Package ratelimit implements a token-bucket limiter shared by concurrent callers,
// with per-key buckets that expire when idle.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrClosed is returned by Wait after the limiter has been closed.
var ErrClosed = errors.New("ratelimit: limiter closed")

// Config describes one bucket: Rate tokens per second, up to Burst at once.
type Config struct {
	Rate    float64
	Burst   int
	IdleTTL time.Duration
}

type bucket struct {
	tokens   float64
	last     time.Time
	lastUsed time.Time
}

// Limiter hands out tokens per key.
type Limiter struct {
	mu      sync.Mutex
	cfg     Config
	buckets map[string]*bucket
	now     func() time.Time
	closed  bool
	done    chan struct{}
}

// New returns a limiter; call Close to stop its janitor goroutine.
func New(cfg Config) (*Limiter, error) {
	if cfg.Rate <= 0 || cfg.Burst < 1 {
		return nil, fmt.Errorf("ratelimit: invalid config rate=%v burst=%d", cfg.Rate, cfg.Burst)
	}
	if cfg.IdleTTL == 0 {
		cfg.IdleTTL = 10 * time.Minute
	}
	l := &Limiter{cfg: cfg, buckets: make(map[string]*bucket), now: time.Now, done: make(chan struct{})}
	go l.janitor()
	return l, nil
}

func (l *Limiter) refill(b *bucket, now time.Time) {
	elapsed := now.Sub(b.last).Seconds()
	if elapsed > 0 {
		b.tokens += elapsed * l.cfg.Rate
		if max := float64(l.cfg.Burst); b.tokens > max {
			b.tokens = max
		}
		b.last = now
	}
}

// reserve takes one token if available, or returns how long to wait for one.
func (l *Limiter) reserve(key string) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	now := l.now()
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: float64(l.cfg.Burst), last: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	b.lastUsed = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, nil
	}
	missing := 1 - b.tokens
	return time.Duration(missing / l.cfg.Rate * float64(time.Second)), nil
}

// Wait blocks until a token for key is available or ctx is done.
func (l *Limiter) Wait(ctx context.Context, key string) error {
	for {
		wait, err := l.reserve(key)
		if err != nil {
			return err
		}
		if wait == 0 {
			return nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-l.done:
			timer.Stop()
			return ErrClosed
		case <-timer.C:
		}
	}
}

func (l *Limiter) janitor() {
	ticker := time.NewTicker(l.cfg.IdleTTL / 2)
	defer ticker.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-ticker.C:
			l.mu.Lock()
			cutoff := l.now().Add(-l.cfg.IdleTTL)
			for key, b := range l.buckets {
				if b.lastUsed.Before(cutoff) {
					delete(l.buckets, key)
				}
			}
			l.mu.Unlock()
		}
	}
}

// Len reports how many keys currently have a bucket.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Close stops the janitor and makes every pending and future Wait fail.
func (l *Limiter) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
}
