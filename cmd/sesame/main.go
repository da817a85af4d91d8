// Command sesame is the Sesame server and its command-line client.
//
//	sesame serve                 start the server
//	sesame ws|cred|keys ...      talk to a server (see sesame help)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sesamehq/sesame/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, nil))
}

const usage = `Sesame: API authentication from both sides.

Usage:
  sesame serve [flags]            start the server (sesame serve -h for flags)
  sesame agent --server URL --token T --allow HOST:PORT|CIDR ...
                                  run an on-premise agent (sesame agent -h for flags)
  sesame agent list|get|create|rm ...
  sesame ws list|get|create|copy|rm ...
  sesame cred list|get|put|rm ...
  sesame conn list|get|put|test|rm ...
  sesame fn list|get|put|call|rm ...
  sesame oauth authorize|grants|revoke|token|providers ...
  sesame user|key|group|role|grant ...
  sesame keys rotate|generate ...
  sesame app keygen|cert|certs|sign|tokens|revoke-cert|revoke-token ...
  sesame audit list|tail|verify|export ...
  sesame help

Client commands reach a server by --server / SESAME_SERVER (default http://127.0.0.1:8420)
and --key / SESAME_KEY, print tables, and JSON with --json.
`

// run is the whole program, testable: it takes its arguments, environment and streams, and
// returns the exit code. listening, if set, is told the server's address once it accepts.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, listening func(addr string)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], getenv, stdout, stderr, listening)
	case "agent":
		if len(args) > 1 && cli.AgentSubcommands[args[1]] {
			err = cli.Run(ctx, args, cli.Env{Getenv: getenv, Stdin: stdin, Stdout: stdout, Stderr: stderr})
		} else {
			err = runAgent(ctx, args[1:], getenv, stderr)
		}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = cli.Run(ctx, args, cli.Env{Getenv: getenv, Stdin: stdin, Stdout: stdout, Stderr: stderr})
	}
	if err == nil {
		return 0
	}
	var ue cli.UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "sesame: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "sesame: %v\n", err)
	return 1
}
