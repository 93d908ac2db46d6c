// Immutable text shared by every copy: a flood's payload is stored once however many runs of a
// sweep carry it (a 1 MB payload in a 1,000-run sweep is 1 MB, not 1 GB).
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace synq::common {

class SharedText {
 public:
  SharedText() = default;
  // Takes `text`; copies of this SharedText then share it.
  explicit SharedText(std::string text)
      : text_(std::make_shared<const std::string>(std::move(text))) {}

  // The text ("" when none was set); valid while any copy lives.
  const std::string& str() const { return text_ ? *text_ : Empty(); }
  bool empty() const { return str().empty(); }
  size_t size() const { return str().size(); }
  // Whether `other` holds the very same storage (not only equal text).
  bool SharesWith(const SharedText& other) const { return text_ == other.text_; }

  friend bool operator==(const SharedText& a, const SharedText& b) { return a.str() == b.str(); }
  friend bool operator==(const SharedText& a, absl::string_view b) { return a.str() == b; }

 private:
  static const std::string& Empty() {
    static const std::string* empty = new std::string();
    return *empty;
  }
  std::shared_ptr<const std::string> text_;
};

}  // namespace synq::common
