package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxBody bounds what the client reads of a response; a snapshot of a few
// hundred pods and events is well under a megabyte.
const maxBody = 64 << 20

// ErrNotRunning reports that nothing answered at the server's address.
var ErrNotRunning = errors.New("no shoal up answering")

// APIError is an error response of the API: its status code and the
// message of its {"error": "..."} body.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.StatusCode)
}

// Client talks to the API of a running `shoal up`. Its errors carry no
// package prefix: the command that uses it adds its own name. The zero
// value talks to DefaultAddr.
type Client struct {
	// Server is the API's host:port, or a URL such as
	// http://127.0.0.1:8090. Empty means DefaultAddr.
	Server string
	// HTTP sends the requests. Nil means a client with a 10-second timeout.
	HTTP *http.Client
}

// Addr is the address the client sends to, for messages.
func (c Client) Addr() string {
	if c.Server == "" {
		return DefaultAddr
	}
	return c.Server
}

func (c Client) baseURL() (string, error) {
	s := strings.TrimSuffix(c.Addr(), "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("server %q: %w", c.Addr(), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("server %q: scheme must be http or https", c.Addr())
	}
	if u.Host == "" {
		return "", fmt.Errorf("server %q: no host", c.Addr())
	}
	return s, nil
}

// Do sends a request without a body to path (such as SnapshotPath) and
// returns the body of a 2xx response. A server that cannot be reached
// gives an error wrapping ErrNotRunning; an error response gives an
// *APIError.
func (c Client) Do(ctx context.Context, method, path string) ([]byte, error) {
	base, err := c.baseURL()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w at %s: %w", ErrNotRunning, c.Addr(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read %s %s from %s: %w", method, path, c.Addr(), err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, apiError(resp.StatusCode, body)
	}
	return body, nil
}

func apiError(code int, body []byte) *APIError {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return &APIError{StatusCode: code, Message: e.Error}
	}
	msg := strings.TrimSpace(string(bytes.ToValidUTF8(body, nil)))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	return &APIError{StatusCode: code, Message: msg}
}

// Snapshot fetches the cluster's state.
func (c Client) Snapshot(ctx context.Context) (*Snapshot, error) {
	body, err := c.Do(ctx, http.MethodGet, SnapshotPath)
	if err != nil {
		return nil, err
	}
	var s Snapshot
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("decode snapshot from %s: %w", c.Addr(), err)
	}
	return &s, nil
}

// Restart rolls out the Deployment namespace/name again.
func (c Client) Restart(ctx context.Context, namespace, name string) error {
	_, err := c.Do(ctx, http.MethodPost, RestartPath(namespace, name))
	return err
}
