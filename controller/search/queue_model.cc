#include "controller/search/queue_model.h"

#include "absl/strings/str_cat.h"
#include "controller/result/format.h"

namespace synq::controller::search {
namespace {

namespace rv1 = ::synq::result::v1;
using result::FormatNumber;

// What the fluid model leaves out, and which way each omission moves the measured knee.
constexpr char kIgnores[] =
    " It ignores: the SYN-RECV stage (a connection joins the accept queue one round trip after "
    "its SYN, microseconds on loopback; the SYN queue itself only drops or sends cookies when "
    "it holds backlog requests, which this round trip keeps near zero); retransmitted SYNs and "
    "SYN-ACKs (they follow the first drop by 1 s, so they do not move a no-drop knee, but they "
    "add arrivals under a loss tolerance and lower the measured knee there); scheduling stalls "
    "of the listener (a stall of s holds back mu s accepts: a listener on an absolute schedule "
    "catches up afterwards, one that skips missed ticks loses them; either way the queue "
    "briefly holds mu s more and the knee drops by up to mu s / T); and "
    "whole connections (the knee is exact only to about 1/T).";

}  // namespace

double PredictedKnee(double accepts_per_second, double room, double trial_seconds,
                     double loss_fraction) {
  return (accepts_per_second + room / trial_seconds) / (1 - loss_fraction);
}

std::optional<double> ServiceRate(const rv1::Listener& listener) {
  if (listener.observed()) return std::nullopt;
  switch (listener.accept()) {
    case rv1::ACCEPT_MODE_NEVER:
      return 0.0;
    case rv1::ACCEPT_MODE_PACED:
      if (listener.accept_rate() > 0) return listener.accept_rate();
      if (listener.accept_interval_ms() > 0) return 1000.0 / listener.accept_interval_ms();
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

rv1::QueueModel ModelKnee(const rv1::Listener* listener, const std::string& listener_name,
                          double trial_seconds, double loss_fraction,
                          std::optional<double> measured) {
  rv1::QueueModel model;
  if (listener == nullptr) {
    model.set_note(
        "the target is an address, not a listener of the scenario: its accept rate and queue "
        "room are unknown, so there is no prediction");
    return model;
  }
  const std::optional<double> mu = ServiceRate(*listener);
  if (!mu) {
    model.set_note(absl::StrCat(
        "listener ", listener_name,
        listener->observed()
            ? " belongs to another process: its accept rate is not known"
            : " accepts immediately: its accept rate is bounded only by the host's CPU",
        ", so there is no service rate to model and no prediction"));
    return model;
  }
  if (!listener->has_backlog_effective()) {
    model.set_note(absl::StrCat("listener ", listener_name,
                                ": backlog_effective was not read, so the queue room is unknown "
                                "and there is no prediction"));
    return model;
  }
  const double room = listener->backlog_effective() + 1.0;
  const double predicted = PredictedKnee(*mu, room, trial_seconds, loss_fraction);
  std::string service;
  if (listener->accept() == rv1::ACCEPT_MODE_NEVER) {
    service = "never accepts (mu = 0/s)";
  } else if (listener->accept_rate() > 0) {
    service = absl::StrCat("accepts at mu = ", FormatNumber(*mu), "/s (accept_rate)");
  } else {
    service = absl::StrCat("accepts at mu = 1 / ", FormatNumber(listener->accept_interval_ms()),
                           " ms = ", FormatNumber(*mu), "/s");
  }
  std::string statement = absl::StrCat(
      "Fluid queue: listener ", listener_name, " ", service,
      "; its accept queue holds K = "
      "backlog_effective + 1 = ",
      FormatNumber(room),
      " (the kernel drops a SYN or a final ACK once sk_ack_backlog > sk_max_ack_backlog); "
      "arrivals at lambda for T = ",
      FormatNumber(trial_seconds),
      " s fill it at lambda - mu and first drop when (lambda - mu) T > K, so ");
  if (loss_fraction > 0) {
    absl::StrAppend(&statement, "allowing drops of ", FormatNumber(100 * loss_fraction),
                    "% of lambda T, lambda* = (mu + K/T) / (1 - loss) = ", FormatNumber(predicted),
                    "/s.");
  } else {
    absl::StrAppend(&statement, "lambda* = mu + K/T = ", FormatNumber(predicted), "/s.");
  }
  absl::StrAppend(&statement, kIgnores);
  model.set_statement(statement);
  model.set_predicted_rate(predicted);
  if (measured && predicted > 0) {
    model.set_error_percent((*measured - predicted) / predicted * 100);
  }
  return model;
}

}  // namespace synq::controller::search
