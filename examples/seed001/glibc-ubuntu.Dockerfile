FROM rust:latest as builder
WORKDIR /work
RUN git clone https://github.com/ChanTsune/slice /work/.
RUN cargo build --release
RUN strip /work/target/release/slice -o /slice
FROM ubuntu:22.04
COPY --from=builder /slice /usr/local/bin/
ENTRYPOINT ["slice"]
