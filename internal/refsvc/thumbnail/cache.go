package thumbnail

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
)

// Key identifies one thumbnail: the digest of the source and the options.
type Key struct {
	Digest string // hex SHA-256 of the source bytes
	Options
}

// Digest returns the hex SHA-256 of data, the cache's and the balancer's key.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func (k Key) String() string {
	return k.Digest + "/" + strconv.Itoa(k.Width) + "x" + strconv.Itoa(k.Height) + "/" + string(k.Fit)
}

// Entry is one cached result.
type Entry struct {
	Data        []byte
	ContentType string
}

// Cache is a least-recently-used cache of encoded thumbnails bounded by
// total bytes. It is safe for concurrent use; the zero value is not: use
// [NewCache].
type Cache struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	order    *list.List // front is most recent; values are *cacheItem
	items    map[Key]*list.Element
}

type cacheItem struct {
	key   Key
	entry Entry
}

// NewCache returns a cache holding at most maxBytes of encoded data.
// maxBytes <= 0 gives a cache that stores nothing.
func NewCache(maxBytes int) *Cache {
	return &Cache{maxBytes: maxBytes, order: list.New(), items: make(map[Key]*list.Element)}
}

// Get returns the entry for k and marks it recently used.
func (c *Cache) Get(k Key) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return Entry{}, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheItem).entry, true
}

// Add stores e under k, evicting the least recently used entries to stay
// within the byte bound. An entry larger than the whole bound is not kept.
func (c *Cache) Add(k Key, e Entry) {
	size := len(e.Data)
	c.mu.Lock()
	defer c.mu.Unlock()
	if size > c.maxBytes {
		return
	}
	if el, ok := c.items[k]; ok {
		c.bytes -= len(el.Value.(*cacheItem).entry.Data)
		el.Value.(*cacheItem).entry = e
		c.bytes += size
		c.order.MoveToFront(el)
	} else {
		c.items[k] = c.order.PushFront(&cacheItem{key: k, entry: e})
		c.bytes += size
	}
	for c.bytes > c.maxBytes {
		last := c.order.Back()
		it := last.Value.(*cacheItem)
		c.order.Remove(last)
		delete(c.items, it.key)
		c.bytes -= len(it.entry.Data)
	}
}

// Len returns the number of entries held.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
