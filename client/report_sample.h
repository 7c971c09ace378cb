#ifndef EVONAS_CLIENT_REPORT_SAMPLE_H_
#define EVONAS_CLIENT_REPORT_SAMPLE_H_

// Test only: a realistic, deterministic ReportInput (a finished search of 80
// candidates with requirements, failures, a test set and a feasible front),
// so that the report is tested and looked at without training anything.

#include "client/report.h"

namespace evonas::client {

ReportInput SampleReportInput();

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_REPORT_SAMPLE_H_
