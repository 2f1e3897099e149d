// The first bound on a YAML document, shared by the server's decoder (config/yaml.cc) and
// fulcrumctl (which expands YAML itself before sending it): the nodes as written, counted from
// parse events before yaml-cpp builds any tree. yaml-cpp's tree costs some 500 bytes per node,
// whatever the text: 16 MiB of "1," would be 8 million nodes and gigabytes. An alias is one node
// (the tree shares what it names), so this bounds the tree's memory; the decoders bound what
// expanding aliases reaches. Header-only; included by those two files alone (no header of src/
// that others include names yaml-cpp). [any thread]
#pragma once

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/mark.h>

#include <cstddef>
#include <string>

namespace fulcrum::config {

inline constexpr size_t kMaxYamlNodes = 1'000'000;

// Thrown by YamlPrescan past kMaxYamlNodes.
struct TooManyYamlNodes {};

// Counts nodes as parse events and remembers where the last document started.
class YamlPrescan final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { last = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { node(); }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { node(); }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    node();
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node();
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node();
  }
  void OnMapEnd() override {}

  YAML::Mark last;  // of the last document started

 private:
  void node() {
    if (++nodes_ > kMaxYamlNodes) throw TooManyYamlNodes{};
  }
  size_t nodes_ = 0;
};

}  // namespace fulcrum::config
