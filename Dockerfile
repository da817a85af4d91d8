# Sesame as a container image: a static binary (CGO_ENABLED=0; SQLite is pure Go) on
# distroless/static, running as the distroless "nonroot" user (65532), data in a volume.
#
#   docker build -t sesame .
#   docker run -p 8420:8420 -v sesame-data:/var/lib/sesame -e SESAME_MASTER_KEY=… sesame
#
# No HEALTHCHECK: distroless has no shell and no curl to run one. Let the orchestrator
# probe GET /healthz (liveness) and GET /readyz (readiness: store reachable and writable).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The same command cmd/sesame/deploy_test.go runs (TestDockerfileBuildCommand).
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/sesame ./cmd/sesame
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sesame /usr/local/bin/sesame
COPY --from=build --chown=65532:65532 /out/data /var/lib/sesame
USER 65532:65532
ENV SESAME_DATA=/var/lib/sesame \
    SESAME_ADDR=0.0.0.0:8420
VOLUME ["/var/lib/sesame"]
EXPOSE 8420
ENTRYPOINT ["/usr/local/bin/sesame"]
CMD ["serve"]
