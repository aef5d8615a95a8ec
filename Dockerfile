# syntax=docker/dockerfile:1
# gotrue-rs container image: a build stage with the Rust toolchain, a slim Debian runtime
# with CA certificates and an unprivileged user.
#
#   docker build -t gotrue-rs --build-arg GIT_COMMIT=$(git rev-parse HEAD) .
#   docker run --rm -v gotrue-data:/var/lib/gotrue gotrue-rs gotrue migrate   # as upstream's image
#   docker run --rm -v gotrue-data:/var/lib/gotrue -p 9999:9999 gotrue-rs     # serve
#
# Without a database setting the server uses SQLite in /var/lib/gotrue (a volume); for
# MySQL/MariaDB set GOTRUE_DB_DRIVER=mysql, DATABASE_URL and GOTRUE_JWT_SECRET.
# The same stages can be run without a container engine: scripts/image-smoke.sh.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs && echo 'fn main() {}' > benches/hot.rs \
    && cargo build --release --locked --bin gotrue \
    && rm -rf src benches
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
COPY openapi.json ./
ARG GIT_COMMIT=""
ENV GOTRUE_GIT_COMMIT=${GIT_COMMIT}
# touch: the placeholder build above must not be mistaken for the real one.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin gotrue \
    && install -m 0755 target/release/gotrue /usr/local/bin/gotrue

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 gotrue \
    && useradd --system --uid 10001 --gid gotrue --home-dir /var/lib/gotrue --shell /usr/sbin/nologin gotrue \
    && install -d -o gotrue -g gotrue -m 0750 /var/lib/gotrue
COPY --from=build /usr/local/bin/gotrue /usr/local/bin/gotrue
COPY docker/entrypoint.sh /usr/local/bin/docker-entrypoint
WORKDIR /var/lib/gotrue
VOLUME ["/var/lib/gotrue"]
ENV GOTRUE_API_HOST=0.0.0.0 \
    PORT=9999
EXPOSE 9999
USER 10001:10001
ENTRYPOINT ["docker-entrypoint"]
CMD ["serve"]
