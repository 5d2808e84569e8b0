# The demo shop's image (every service, the load generator). Build from the repository root:
#   docker build -f deploy/docker/osprey-demo.Dockerfile -t osprey-demo:0.1.0 .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p osprey-demo

FROM debian:bookworm-slim
RUN useradd --uid 65532 --user-group --no-create-home demo
COPY --from=build /src/target/release/osprey-demo /usr/local/bin/osprey-demo
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/osprey-demo"]
CMD ["serve", "gateway"]
