package ttlcache

import (
	"testing"
	"time"
)

func TestExpiryDeleteAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	c := New[string, int](time.Second, 3, func() time.Time { return now })
	c.Set("a", 1)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatal("fresh entry missing")
	}
	now = now.Add(999 * time.Millisecond)
	if _, ok := c.Get("a"); !ok {
		t.Fatal("entry expired early")
	}
	now = now.Add(time.Millisecond)
	if _, ok := c.Get("a"); ok {
		t.Fatal("entry outlived its TTL")
	}
	c.Set("b", 2)
	c.Delete("b")
	if _, ok := c.Get("b"); ok {
		t.Fatal("deleted entry still there")
	}
	for i, k := range []string{"x", "y", "z", "w"} {
		c.Set(k, i)
	}
	if _, ok := c.Get("w"); !ok || len(c.m) > 3 {
		t.Fatalf("bound not kept: %d entries", len(c.m))
	}
	c.Clear()
	if _, ok := c.Get("w"); ok {
		t.Fatal("Clear left an entry")
	}
}
