# Image of the dataops pipeline: one statically-configured C binary that runs
# the Binance klines -> lake -> warehouse ELT once and exits (a batch job).
#
#   docker build --build-arg GIT_COMMIT_HASH="$(git rev-parse --short HEAD)" \
#       --platform linux/amd64 -f Dockerfile -t pipeline-dataops:TAG .
#
# Two stages: "build" has the compiler and the -dev packages; the runtime stage
# carries only the binary, the shared libraries it links, CA certificates and
# time zone data. See README.md "Shipping".

############################ build stage ############################
FROM debian:bookworm-slim AS build

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential \
        cmake \
        pkg-config \
        libcurl4-openssl-dev \
        libsqlite3-dev \
        libssl-dev \
        libcjson-dev \
        zlib1g-dev \
        libpq-dev \
        libzip-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# .dockerignore keeps tests, docs, data, build outputs and secrets out of the
# context: only what the CMake build needs arrives here.
COPY . .

# The commit is baked into `dataops version` and into every run record.
ARG GIT_COMMIT_HASH=unknown
RUN cmake -S . -B /tmp/build \
        -DCMAKE_BUILD_TYPE=Release \
        -DGIT_COMMIT_HASH="${GIT_COMMIT_HASH}" \
        -DDATAOPS_BUILD_TESTS=OFF \
    && cmake --build /tmp/build -j"$(nproc)" \
    && cmake --install /tmp/build --prefix /usr/local --strip \
    && /usr/local/bin/dataops version

############################ runtime stage ############################
FROM debian:bookworm-slim AS runtime

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libcurl4 \
        libsqlite3-0 \
        libssl3 \
        libcjson1 \
        zlib1g \
        libpq5 \
        libzip4 \
        ca-certificates \
        tzdata \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log

# HOME_DIR is the working directory: the default lake and SQLite warehouse live
# under HOME_DIR/data, and the entrypoint may write the decoded service-account
# key there (GOOGLE_APPLICATION_CREDENTIALS=HOME_DIR/gcp-storage-service-account.json
# as in the original's `docker run`).
ARG HOME_DIR=/pipeline-dataops
# Fixed ids: Kubernetes' runAsNonRoot can only verify a numeric USER, and the
# CronJob's runAsUser/fsGroup must match these.
ARG APP_UID=10001
ARG APP_GID=10001
RUN groupadd --system --gid "${APP_GID}" dataops \
    && useradd --system --uid "${APP_UID}" --gid "${APP_GID}" \
        --home-dir "${HOME_DIR}" --no-create-home --shell /usr/sbin/nologin dataops \
    && mkdir -p "${HOME_DIR}/data" \
    && chown -R "${APP_UID}:${APP_GID}" "${HOME_DIR}" \
    && chmod 0750 "${HOME_DIR}" "${HOME_DIR}/data"

COPY --from=build /usr/local/bin/dataops /usr/local/bin/dataops
COPY scripts/docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# (chmod: in case the checkout lost the executable bit, e.g. core.fileMode=false)
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh \
    && /usr/local/bin/dataops version

ARG GIT_COMMIT_HASH=unknown
LABEL org.opencontainers.image.title="pipeline-dataops" \
      org.opencontainers.image.description="dataops: Binance klines -> lake -> warehouse ELT (C)" \
      org.opencontainers.image.revision="${GIT_COMMIT_HASH}" \
      git_commit_hash="${GIT_COMMIT_HASH}"
ENV GIT_COMMIT_HASH="${GIT_COMMIT_HASH}" \
    HOME="${HOME_DIR}" \
    HOME_DIR="${HOME_DIR}"

WORKDIR ${HOME_DIR}
USER ${APP_UID}:${APP_GID}

# The entrypoint materialises the Google credentials file if needed, then
# exec's `dataops "$@"` (so dataops is PID 1 and receives SIGTERM directly).
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["run"]
