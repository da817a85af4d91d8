package cli

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/sesamehq/sesame/internal/auth"
	"github.com/sesamehq/sesame/internal/crypt"
)

const keysUsage = `usage:
  sesame keys rotate [--new-key-file FILE]   re-wrap every stored secret under a new master key
                                             (the server generates and saves it when its key is in
                                             a file; with SESAME_MASTER_KEY pass the new key)
  sesame keys generate [--api-key]           print a new random master key (base64), or a new
                                             well-formed API key (for SESAME_ADMIN_KEY)`

func keysCommand(ctx context.Context, c *client, args []string) error {
	if len(args) == 0 {
		return usagef(keysUsage)
	}
	fs := c.flags("keys " + args[0])
	newKeyFile := fs.String("new-key-file", "", "rotate: file holding the new base64 master key")
	apiKey := fs.Bool("api-key", false, "generate: make an API key instead of a master key")
	pos, err := parse(fs, args[1:])
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
		_, err = fmt.Fprintln(c.env.Stdout, k.Encode())
		return err
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
