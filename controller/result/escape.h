// Escaping for the markup outputs (JUnit XML, the HTML report): one implementation, which also
// replaces what XML 1.0 cannot carry (invalid UTF-8, most control characters) with U+FFFD.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace synq::controller::result {

// `text` escaped for an XML attribute value (`attribute`: newlines and tabs as character
// references, which attribute normalisation would otherwise turn into spaces) or for element
// content (kept literal).
std::string XmlEscape(const std::string& text, bool attribute = true);

// `text` made safe as HTML element content and as a quoted attribute value (& < > " ').
std::string HtmlEscape(absl::string_view text);

}  // namespace synq::controller::result
