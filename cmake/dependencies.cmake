# Every dependency is a Debian bookworm package; scripts/bootstrap installs them.
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED CONFIG)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
# OpenSSL (Debian libssl-dev) for TLS on the Kafka listener and SCRAM (src/security).
find_package(OpenSSL 3 REQUIRED)
# Kafka's compression codecs, for `model` to inflate batches that clients compressed (the log
# source and the gateway read them); the fuzz build needs them too, since it links `model`.
find_package(PkgConfig REQUIRED)
pkg_check_modules(RUNNEL_CODECS REQUIRED IMPORTED_TARGET zlib libzstd liblz4 snappy)
# RocksDB (Debian librocksdb-dev) for keyed state larger than memory (engine/state_store.cc).
pkg_check_modules(ROCKSDB REQUIRED IMPORTED_TARGET rocksdb)
if(NOT RUNNEL_FUZZ)
  # Boost.JSON (Debian libboost-json1.81-dev) for the HTTP gateway.
  find_package(Boost 1.81 REQUIRED CONFIG COMPONENTS json)
  find_package(CLI11 REQUIRED)
  find_package(GTest REQUIRED)
  find_package(benchmark REQUIRED)
  # librdkafka (Debian librdkafka-dev) for the Kafka client commands and the Kafka connector.
  pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
  # libedit (Debian libedit-dev) for the line editing and history of the `runnel sql` shell.
  pkg_check_modules(LIBEDIT REQUIRED IMPORTED_TARGET libedit)
endif()
