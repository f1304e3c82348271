# syntax=docker/dockerfile:1
# The dbaudit image: proxy (collector), gateway and webhook in one, run as
#   dbaudit/collector:<version> proxy | gateway | webhook | inject …
# A build stage compiles the TypeScript to dist/ (scripts/build.mjs, tsc); the
# deps stage installs production dependencies; the last stage copies both,
# with the sources (source maps point at them; bin/dbaudit.js falls back to
# running them through tsx if dist/ were missing), into a slim image that runs
# as a non-root, numeric user (so runAsNonRoot can be verified by the kubelet).
ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts/build.mjs ./scripts/build.mjs
# --ignore-scripts: this stage only needs typescript, not the native addons.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY lib ./lib
COPY proxy ./proxy
COPY cache ./cache
COPY gateway ./gateway
COPY proto ./proto
RUN DBAUDIT_BUILD_STRICT=1 node scripts/build.mjs

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
# rocksdb is a native addon: it ships prebuilt binaries; the toolchain serves
# node-gyp when no prebuilt one fits the platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# prepare runs scripts/build.mjs, which skips the build without typescript.
COPY scripts/build.mjs ./scripts/build.mjs
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOME=/tmp \
    NODE_OPTIONS=--enable-source-maps
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY lib ./lib
COPY proxy ./proxy
COPY cache ./cache
COPY gateway ./gateway
COPY proto ./proto
# Last, so the build stamp is newer than every source file copied above.
COPY --from=build /app/dist ./dist
# The cache and gateway data directories; in Kubernetes they are volumes.
RUN mkdir -p /var/lib/dbaudit/cache /var/lib/dbaudit/gateway /etc/dbaudit \
 && chown -R 10001:10001 /var/lib/dbaudit
USER 10001:10001
# 6432 proxy, 8080 collector health/metrics, 50051 gateway gRPC, 8081 gateway health/metrics, 8443 webhook
EXPOSE 6432 8080 50051 8081 8443
ENTRYPOINT ["node", "/app/bin/dbaudit.js"]
CMD ["proxy"]
