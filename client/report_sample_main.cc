// evonas_report_sample [--classification] HTML_FILE SVG_FILE: writes the
// report and the front plot of SampleReportInput(), or with
// --classification of SampleClassificationReportInput(), for the browser
// test (tests/).

#include <fstream>
#include <iostream>
#include <string>

#include "client/report.h"
#include "client/report_sample.h"

int main(int argc, char** argv) {
  const bool classification =
      argc == 4 && std::string(argv[1]) == "--classification";
  if (argc != 3 && !classification) {
    std::cerr << "usage: evonas_report_sample [--classification] HTML_FILE "
                 "SVG_FILE\n";
    return 2;
  }
  const char* html_file = argv[argc - 2];
  const char* svg_file = argv[argc - 1];
  const evonas::client::ReportInput input =
      classification ? evonas::client::SampleClassificationReportInput()
                     : evonas::client::SampleReportInput();
  std::ofstream html(html_file, std::ios::binary);
  html << evonas::client::RenderReportHtml(input);
  std::ofstream svg(svg_file, std::ios::binary);
  svg << evonas::client::RenderFrontSvg(input);
  html.close();
  svg.close();
  if (!html || !svg) {
    std::cerr << "evonas_report_sample: cannot write the output files\n";
    return 1;
  }
  return 0;
}
