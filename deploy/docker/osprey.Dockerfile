# Osprey's server image. Build from the repository root:
#   docker build -f deploy/docker/osprey.Dockerfile -t osprey:0.1.0 .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p osprey

FROM debian:bookworm-slim
# ca-certificates only: the binary links glibc and nothing else the slim image lacks.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 65532 --user-group --no-create-home osprey \
    && mkdir -p /var/lib/osprey && chown 65532:65532 /var/lib/osprey
COPY --from=build /src/target/release/osprey /usr/local/bin/osprey
USER 65532:65532
VOLUME /var/lib/osprey
EXPOSE 4317 4318 16686 16685 3200 5778 9411 14268 6831/udp 6832/udp
ENTRYPOINT ["/usr/local/bin/osprey"]
CMD ["serve", "--data-dir", "/var/lib/osprey"]
