package cli

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/crypt"
)

const keysUsage = `usage:
  sesame keys rotate [--new-key-file FILE]   re-wrap every stored secret under a new master key
                                             (the server generates and saves it when its key is in
                                             a file; with SESAME_MASTER_KEY, or with several
                                             replicas, pass the new key, which every live replica
                                             must already hold)
  sesame keys status                         the store's primary key ID, each key's state, and
                                             the key IDs every replica holds
  sesame keys generate [--api-key]           print a new random master key (base64; its ID on
                                             stderr), or a new well-formed API key (for
                                             SESAME_ADMIN_KEY)`

func keysCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(keysUsage)
	}
	fs := c.flags("keys " + args[0])
	newKeyFile := fs.String("new-key-file", "", "rotate: file holding the new base64 master key")
	apiKey := fs.Bool("api-key", false, "generate: make an API key instead of a master key")
	pos, err := c.parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef(keysUsage)
	}
	switch args[0] {
	case "generate":
		if *apiKey {
			k, err := auth.GenerateKey()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.env.Stdout, "%s\n", k.Reveal())
			return err
		}
		k, err := crypt.GenerateMasterKey()
		if err != nil {
			return err
		}
		// The ID (what `sesame keys status` shows) goes to stderr, so that stdout is the key
		// alone, ready for a key file or SESAME_MASTER_KEY.
		fmt.Fprintf(c.env.Stderr, "master key id: %s\n", k.ID())
		_, err = fmt.Fprintln(c.env.Stdout, k.Encode())
		return err
	case "status":
		var st struct {
			Primary string `json:"primary"`
			Version int64  `json:"version"`
			This    string `json:"this_replica"`
			Keys    []struct {
				ID    string `json:"key_id"`
				State string `json:"state"`
			} `json:"keys"`
			Replicas []struct {
				ID           string    `json:"id"`
				KeyIDs       []string  `json:"key_ids"`
				HoldsPrimary bool      `json:"holds_primary"`
				Live         bool      `json:"live"`
				SeenAt       time.Time `json:"seen_at"`
			} `json:"replicas"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/system/master-keys", nil, nil, &st); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(st)
		}
		fmt.Fprintf(c.env.Stdout, "primary master key: %s (version %d)\n", st.Primary, st.Version)
		for _, k := range st.Keys {
			fmt.Fprintf(c.env.Stdout, "  %s  %s\n", k.ID, k.State)
		}
		rows := make([][]string, 0, len(st.Replicas))
		for _, r := range st.Replicas {
			rows = append(rows, []string{r.ID, strings.Join(r.KeyIDs, ","), fmt.Sprint(r.HoldsPrimary), fmt.Sprint(r.Live), r.SeenAt.Format(time.RFC3339)})
		}
		return c.table([]string{"REPLICA", "KEY IDS", "HOLDS PRIMARY", "LIVE", "SEEN"}, rows)
	case "rotate":
		body := map[string]string{}
		if *newKeyFile != "" {
			b, err := os.ReadFile(*newKeyFile)
			if err != nil {
				return err
			}
			body["new_key"] = strings.TrimSpace(string(b))
			clear(b)
		}
		var res struct {
			KeyID          string   `json:"key_id"`
			PreviousKeyIDs []string `json:"previous_key_ids"`
			Rewrapped      int      `json:"rewrapped"`
			Persisted      bool     `json:"persisted"`
		}
		if err := c.do(ctx, http.MethodPost, "/v1/system/master-key/rotate", nil, body, &res); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(res)
		}
		fmt.Fprintf(c.env.Stdout, "master key rotated: %s -> %s, %d sealed values re-wrapped\n",
			strings.Join(res.PreviousKeyIDs, ","), res.KeyID, res.Rewrapped)
		if !res.Persisted {
			fmt.Fprintln(c.env.Stdout, "set SESAME_MASTER_KEY to the new key before the server restarts")
		}
		return nil
	}
	return usagef(keysUsage)
}
