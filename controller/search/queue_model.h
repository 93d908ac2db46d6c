// What a queueing model predicts for a listener's knee, beside the measured one. The model is a
// deterministic fluid queue: arrivals at the trial rate lambda for the trial length T, accepts at
// the listener's rate mu, and room for K = backlog_effective + 1 connections in the accept queue
// (the kernel calls it full when sk_ack_backlog > sk_max_ack_backlog, so backlog + 1 fit).
#pragma once

#include <optional>
#include <string>

#include "synq/result/v1/result.pb.h"

namespace synq::controller::search {

// The queue grows at (lambda - mu) and first drops a connection when (lambda - mu) T > K, so the
// highest rate without a drop is mu + K / T. With a loss tolerance l (a fraction), the drops
// (lambda - mu) T - K may reach l lambda T, so lambda* = (mu + K / T) / (1 - l).
double PredictedKnee(double accepts_per_second, double room, double trial_seconds,
                     double loss_fraction);

// The listener's accept rate in accepts/s: `accept_rate` when given, else 1 / accept_interval,
// 0 for a listener that never accepts; absent when no rate is known (immediate, observed).
std::optional<double> ServiceRate(const synq::result::v1::Listener& listener);

// The model for a search's target: `listener` is the flood's target listener in the knee trial's
// run (null for an ADDRESS:PORT target), `listener_name` its name. Without a known service rate
// or queue room the model says why in `note` and predicts nothing. `measured` is the knee found;
// the error is (measured - predicted) / predicted in percent when both exist.
synq::result::v1::QueueModel ModelKnee(const synq::result::v1::Listener* listener,
                                       const std::string& listener_name, double trial_seconds,
                                       double loss_fraction, std::optional<double> measured);

}  // namespace synq::controller::search
