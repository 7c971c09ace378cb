#ifndef EVONAS_SERVER_OBSERVABILITY_CONTROLLER_OBSERVER_H_
#define EVONAS_SERVER_OBSERVABILITY_CONTROLLER_OBSERVER_H_

#include <string>

#include "evonas/v1/types.pb.h"

namespace evonas::observability {

// The significant events of a controller, for logs and metrics
// (ControllerTelemetry). The controller reports an event only once the
// database transaction that records it has committed, so work a failed
// commit rolled back is never reported; it calls with its lock held, so
// implementations must be quick, thread-safe, and must not call the
// controller.
class ControllerObserver {
 public:
  virtual ~ControllerObserver() = default;

  // A new experiment, in state RUNNING, of `tenant` (empty without
  // authentication).
  virtual void ExperimentCreated(const v1::Experiment& experiment,
                                 const std::string& tenant) = 0;
  // The experiment left RUNNING for `state` (COMPLETED or CANCELLED).
  virtual void ExperimentFinished(const std::string& experiment_id,
                                  v1::ExperimentState state) = 0;
  // A candidate reached a final state (SUCCEEDED, FAILED or CANCELLED), as
  // stored; a copy of an earlier candidate has duplicate_of set.
  virtual void CandidateFinished(const v1::Candidate& candidate) = 0;
  // The lease of `worker_id` on `candidate` expired unreported; `candidate`
  // is as stored afterwards: QUEUED again, or FAILED once out of attempts.
  virtual void LeaseExpired(const v1::Candidate& candidate,
                            const std::string& worker_id) = 0;
  // A worker asked for work or heartbeated. Not tied to a transaction: called
  // on every such call, before it runs, without the controller's lock.
  virtual void WorkerSeen(const std::string& worker_id) = 0;
};

}  // namespace evonas::observability

#endif  // EVONAS_SERVER_OBSERVABILITY_CONTROLLER_OBSERVER_H_
