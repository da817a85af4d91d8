package main

import (
	"fmt"
	"runtime/debug"
)

// buildVersion is what the binary knows about its own build: the module version and the
// VCS revision the Go toolchain stamped into it (runtime/debug.ReadBuildInfo).
type buildVersion struct {
	Version   string // module version: a tag such as v1.4.0, or (devel) for a local build
	Revision  string // VCS commit, empty when built without VCS information
	Modified  bool   // the work tree had uncommitted changes
	GoVersion string
}

// readBuildVersion reads the build information; read is debug.ReadBuildInfo (a parameter
// so that tests can give their own).
func readBuildVersion(read func() (*debug.BuildInfo, bool)) buildVersion {
	v := buildVersion{Version: "(unknown)"}
	bi, ok := read()
	if !ok || bi == nil {
		return v
	}
	v.GoVersion = bi.GoVersion
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// Short is the version and the first 12 characters of the revision, for /healthz and
// the start log line: "v1.4.0 (3f2a9c1b7d0e)", "(devel) (3f2a9c1b7d0e, modified)".
func (v buildVersion) Short() string {
	if v.Revision == "" {
		return v.Version
	}
	rev := v.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if v.Modified {
		rev += ", modified"
	}
	return fmt.Sprintf("%s (%s)", v.Version, rev)
}

// String is what `sesame version` prints.
func (v buildVersion) String() string {
	s := "sesame " + v.Version
	if v.Revision != "" {
		s += "\ncommit " + v.Revision
		if v.Modified {
			s += " (modified)"
		}
	}
	if v.GoVersion != "" {
		s += "\n" + v.GoVersion
	}
	return s + "\n"
}
