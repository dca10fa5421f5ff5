# syntax=docker/dockerfile:1
# One image for every Clipper service: `node /opt/clipper/dist/<service>/main.mjs [flags]`, where <service>
# is registry, router, gateway or container-manager (the bundles of services/build.ts; deploy/kubernetes
# gives each Deployment its command). Build from the repository root:
#   docker build -f deploy/images/services.Dockerfile -t REGISTRY/clipper/services:TAG .
# (services.Dockerfile.dockerignore, beside this file, keeps the context small.)
# Not built or run on the development machines (no container engine, no registry): docs/kubernetes.md.

ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# --- build: every dependency, then the esbuild bundles dist/<service>/main.mjs.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# The workspace's package.json is needed for the lock file to resolve (package.json "workspaces").
COPY package.json package-lock.json ./
COPY sdk/typescript/package.json sdk/typescript/package.json
# npm install with the lock, not npm ci: the lock is written without other platforms' optional packages (.ci/run).
RUN npm install --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY gen gen
COPY services services
RUN node --import tsx --input-type=module \
      -e 'import { buildServices } from "./services/build.ts"; await buildServices(process.cwd());' \
 && test -f dist/registry/main.mjs && test -f dist/router/main.mjs && test -f dist/gateway/main.mjs && test -f dist/container-manager/main.mjs

# --- deps: production dependencies only (the bundles keep npm packages as imports).
FROM ${NODE_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
COPY sdk/typescript/package.json sdk/typescript/package.json
RUN npm install --omit=dev --no-audit --no-fund --loglevel=error && npm cache clean --force

# --- runtime: node, the production node_modules and the bundles; no npm cache, no sources, no compiler.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /opt/clipper
COPY --from=deps /src/node_modules node_modules
COPY --from=deps /src/package.json package.json
COPY --from=build /src/dist dist
# A numeric, non-root user (runAsNonRoot can check a number, not a name); the data directory is its own.
RUN mkdir -p /var/lib/clipper && chown 10001:10001 /var/lib/clipper
USER 10001:10001
ENV HOME=/tmp
EXPOSE 1337 1338 1339 1340 9338 9339 9340
ENTRYPOINT ["node"]
CMD ["/opt/clipper/dist/gateway/main.mjs"]
