package jwtbearer_test

import (
	"testing"
	"time"

	"github.com/sesamehq/sesame/internal/jwtbearer"
)

// BenchmarkSign signs one JWT with a typical service-account payload, per algorithm.
func BenchmarkSign(b *testing.B) {
	for _, alg := range jwtbearer.Algorithms {
		b.Run(alg, func(b *testing.B) {
			secrets, _ := credentialFor(b, alg)
			public := map[string]any{"alg": alg, "headers": map[string]any{"kid": "key-1"},
				"payload": map[string]any{"iss": "svc@project.iam.gserviceaccount.com", "sub": "{{user}}",
					"aud": "https://oauth2.googleapis.com/token", "scope": "https://www.googleapis.com/auth/calendar"}}
			s, err := jwtbearer.New(public, secrets, "default", "google.sa")
			if err != nil {
				b.Fatal(err)
			}
			v := jwtbearer.Vars{User: "alice@example.com", Workspace: "default", Credential: "google.sa"}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.Sign(v, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
