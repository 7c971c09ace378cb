// evonas_report_sample HTML_FILE SVG_FILE: writes the report and the front
// plot of SampleReportInput(), for the browser test (tests/).

#include <fstream>
#include <iostream>

#include "client/report.h"
#include "client/report_sample.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: evonas_report_sample HTML_FILE SVG_FILE\n";
    return 2;
  }
  const evonas::client::ReportInput input =
      evonas::client::SampleReportInput();
  std::ofstream html(argv[1], std::ios::binary);
  html << evonas::client::RenderReportHtml(input);
  std::ofstream svg(argv[2], std::ios::binary);
  svg << evonas::client::RenderFrontSvg(input);
  html.close();
  svg.close();
  if (!html || !svg) {
    std::cerr << "evonas_report_sample: cannot write the output files\n";
    return 1;
  }
  return 0;
}
