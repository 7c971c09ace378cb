#ifndef EVONAS_CLIENT_REPORT_SAMPLE_H_
#define EVONAS_CLIENT_REPORT_SAMPLE_H_

// Test only: realistic, deterministic ReportInputs, so that the report is
// tested and looked at without training anything.

#include "client/report.h"

namespace evonas::client {

// A finished regression search of 80 candidates with requirements,
// failures, a test set and a feasible front.
ReportInput SampleReportInput();

// A finished classification search of 60 candidates on Fashion-MNIST-like
// images (784 pixel columns, 10 classes) with a min_accuracy requirement,
// failures, a test set and a feasible front.
ReportInput SampleClassificationReportInput();

}  // namespace evonas::client

#endif  // EVONAS_CLIENT_REPORT_SAMPLE_H_
