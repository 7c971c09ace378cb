// evonas_report_sample [--classification] HTML_FILE SVG_FILE [PNG_FILE]:
// writes the report, the front plot and (with PNG_FILE) the front plot as a
// PNG at scale 2 of SampleReportInput(), or with --classification of
// SampleClassificationReportInput(), for the browser test (tests/).

#include <fstream>
#include <iostream>
#include <string>

#include "client/report.h"
#include "client/report_sample.h"

int main(int argc, char** argv) {
  const bool classification =
      argc > 1 && std::string(argv[1]) == "--classification";
  const int files = argc - 1 - (classification ? 1 : 0);
  if (files != 2 && files != 3) {
    std::cerr << "usage: evonas_report_sample [--classification] HTML_FILE "
                 "SVG_FILE [PNG_FILE]\n";
    return 2;
  }
  const char* html_file = argv[argc - files];
  const char* svg_file = argv[argc - files + 1];
  const evonas::client::ReportInput input =
      classification ? evonas::client::SampleClassificationReportInput()
                     : evonas::client::SampleReportInput();
  std::ofstream html(html_file, std::ios::binary);
  html << evonas::client::RenderReportHtml(input);
  std::ofstream svg(svg_file, std::ios::binary);
  svg << evonas::client::RenderFrontSvg(input);
  html.close();
  svg.close();
  bool ok = html && svg;
  if (files == 3) {
    const auto png = evonas::client::RenderFrontPng(input);
    if (!png.ok()) {
      std::cerr << "evonas_report_sample: " << png.status() << "\n";
      return 1;
    }
    std::ofstream file(argv[argc - 1], std::ios::binary);
    file << *png;
    file.close();
    ok = ok && file;
  }
  if (!ok) {
    std::cerr << "evonas_report_sample: cannot write the output files\n";
    return 1;
  }
  return 0;
}
