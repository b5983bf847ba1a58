#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "base/base.h"

namespace runnel::broker {
class broker;
} // namespace runnel::broker

namespace runnel::jobs {
class manager;
} // namespace runnel::jobs

namespace runnel::app {

/// The template name of the demo's counting job.
inline constexpr std::string_view demo_template = "demo_bids_per_channel";

/// Registers the demo's job template. Call before the job manager starts, with or without
/// `--demo`: a data directory that once ran the demo holds the job, and the manager rebuilds
/// it from this template at every start. Idempotent.
void register_demo_template();

/// The live demo of `runnel serve --demo` (what `make run` starts): generated Nexmark bids into
/// the topic `demo-bids` from a thread of its own, and a durable job (`demo-bids-per-channel`,
/// at-least-once for low latency) counting them per channel in 5 s windows into the topic of
/// the same name. `start` after the broker and the job manager, `stop` before them.
class demo {
public:
    demo(broker::broker& brk, jobs::manager& jobs, int64_t events_per_second);
    ~demo();
    demo(const demo&) = delete;
    demo& operator=(const demo&) = delete;

    /// Creates the two topics when missing and starts the thread.
    result<void> start();
    /// Stops the thread after its last appends are answered; idempotent.
    void stop();

private:
    void run();
    struct state;
    std::unique_ptr<state> _state;
};

} // namespace runnel::app
