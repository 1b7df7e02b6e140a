// A small XML reader for the test-result files `make test` reads: ctest's --output-junit and GoogleTest's
// --gtest_output=xml. It keeps elements, attributes and text (CDATA included, entities decoded); it skips
// the prolog, comments, processing instructions and DOCTYPE, and knows nothing of namespaces or DTDs.
// Thread-safety: pure functions over values.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace netdist::test_report {

struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attributes;
  std::string text;  // the element's own character data, children's excluded
  std::vector<XmlElement> children;

  // The attribute's value, or "" when it is absent.
  std::string attribute(const std::string& key) const;
  // The first child named `child_name`, or nullptr.
  const XmlElement* child(const std::string& child_name) const;
};

// Parses a whole document; the error names the byte offset and what was expected there.
Result<XmlElement> parse_xml(std::string_view text);

}  // namespace netdist::test_report
