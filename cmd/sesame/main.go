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
	"runtime/debug"
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
  sesame login [--no-browser]     sign in through the server's identity provider (OIDC); logout ends it
  sesame backup [flags] FILE      consistent snapshot of the store (--data or --postgres), secrets sealed
  sesame restore [flags] FILE     load a backup into an empty store; needs the master key that opens it
  sesame version                  print the version and commit (also --version)
  sesame help [COMMAND]           this text, or a command's usage (also COMMAND --help)

Client commands reach a server by --server / SESAME_SERVER (default http://127.0.0.1:8420)
and --key / SESAME_KEY (else the session of sesame login), print tables, and JSON with --json.
Exit codes: 0 success (and help), 1 failure, 2 wrong command line.
`

// run is the whole program, testable: it takes its arguments, environment and streams, and
// returns the exit code. listening, if set, is told the server's address once it accepts.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, listening func(addr string)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch {
	case args[0] == "serve":
		err = serve(ctx, args[1:], getenv, stdout, stderr, listening)
	case args[0] == "backup":
		err = backupCommand(ctx, args[1:], getenv, stdout, stderr)
	case args[0] == "restore":
		err = restoreCommand(ctx, args[1:], getenv, stdout, stderr)
	case args[0] == "version" || args[0] == "--version":
		fmt.Fprint(stdout, readBuildVersion(debug.ReadBuildInfo))
		return 0
	case args[0] == "agent" && !(len(args) > 1 && cli.AgentSubcommands[args[1]]):
		// sesame agent [flags] runs an agent; sesame agent list|get|create|rm are client commands.
		err = runAgent(ctx, args[1:], getenv, stdout, stderr)
	case args[0] == "help" && len(args) > 1:
		// sesame help GROUP: the group's usage.
		text, ok := cli.Usage(args[1])
		if !ok {
			if args[1] != "serve" {
				err = cli.Unknown("sesame", args[1], append(cli.Commands(), "serve"))
				break
			}
			err = serve(ctx, []string{"--help"}, getenv, stdout, stderr, listening)
			break
		}
		fmt.Fprintln(stdout, text)
		return 0
	case cli.IsHelp(args[0]):
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = cli.Run(ctx, args, cli.Env{Getenv: getenv, Stdin: stdin, Stdout: stdout, Stderr: stderr})
	}
	return exitCode(err, stderr)
}

// exitCode reports err and maps it to the exit code: 0 for success and help, 2 for a wrong
// command line, 1 for every other failure.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, cli.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "sesame: %v\n", err)
	var ue cli.UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
