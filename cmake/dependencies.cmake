# Every dependency is a Debian bookworm package; scripts/bootstrap installs them.
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED CONFIG)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
if(NOT RUNNEL_FUZZ)
  # Boost.JSON (Debian libboost-json1.81-dev) for the HTTP gateway.
  find_package(Boost 1.81 REQUIRED CONFIG COMPONENTS json)
  find_package(CLI11 REQUIRED)
  find_package(GTest REQUIRED)
  find_package(benchmark REQUIRED)
  # librdkafka (Debian librdkafka-dev) for the Kafka client commands of `runnel`.
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
  # Kafka's compression codecs, for the gateway to read batches that clients compressed.
  pkg_check_modules(RUNNEL_CODECS REQUIRED IMPORTED_TARGET zlib libzstd liblz4 snappy)
endif()
