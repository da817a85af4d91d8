package proctest

import (
	"database/sql"
	"net/http"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// TestServerAndClusterLifecycle starts sesame as a subprocess on a private PostgreSQL
// cluster, kills it with SIGKILL, restarts the cluster and the server, and checks that the
// server answers each time.
func TestServerAndClusterLifecycle(t *testing.T) {
	c := NewCluster(t)
	s := Start(t, Options{Args: []string{"--postgres", c.URL(), "--data", t.TempDir()}})
	if s.AdminKey == "" {
		t.Fatalf("no admin key printed; stdout:\n%s", s.Stdout)
	}
	get := func() int {
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(); got != 200 {
		t.Fatalf("readyz = %d", got)
	}
	s.Kill()
	if s.Running() {
		t.Fatal("still running after kill")
	}
	c.Stop()
	c.Start()
	s.Restart()
	if got := get(); got != 200 {
		t.Fatalf("readyz after restarts = %d; stderr:\n%s", got, s.Stderr)
	}
	db, err := sql.Open("pgx", c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM users").Scan(&n); err != nil || n != 1 {
		t.Fatalf("users = %d, %v", n, err)
	}
}
