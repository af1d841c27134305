# Multi-stage build of the operator image with a container engine: the glibc binary on distroless,
# non-root. The released image is built without one by scripts/build-image (static musl binary,
# tested by tests/image.rs; see README, Image). No container engine is available on the
# development machines of this project, so this file is not built by CI.
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
# The simulators' package (sim/) is a workspace member: cargo reads it, the build leaves it out.
COPY sim ./sim
RUN cargo build --release --locked -p connect-email-operator --bin connect-email-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/connect-email-operator /usr/local/bin/connect-email-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/connect-email-operator"]
CMD ["run"]
