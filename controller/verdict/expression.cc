#include "controller/verdict/expression.h"

#include <muParser.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace synq::controller::verdict {
namespace {

enum class Kind { kPath, kNumber, kFunction, kArith, kCompare, kAnd, kOr, kOpen, kClose, kComma };

struct Token {
  Kind kind;
  size_t begin = 0;  // in the text
  size_t end = 0;
  std::string code;  // what muParser is given for it
  size_t code_begin = 0;
  size_t code_end = 0;
};

constexpr absl::string_view kFunctions[] = {"abs", "max", "min"};

// Segments after these are names, which may contain '-' (host and item names do).
constexpr absl::string_view kNamedSections[] = {"floods", "listeners", "hosts", "settings",
                                                "shaping"};

bool IsWordChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool IsDigit(char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }

absl::Status At(size_t pos, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(why, " at position ", pos));
}

// The end of the path or word starting at `i`: word characters, '.' between segments,
// "[<digits>]" (sweep paths like shaping[0].delay), '-' inside a name segment.
size_t ScanPath(const std::string& text, size_t i) {
  const size_t n = text.size();
  size_t segment_start = i;
  std::string previous;  // the last completed segment
  while (i < n) {
    const char c = text[i];
    if (IsWordChar(c)) {
      ++i;
    } else if (c == '.' && i + 1 < n && IsWordChar(text[i + 1])) {
      previous = text.substr(segment_start, i - segment_start);
      segment_start = ++i;
    } else if (c == '[' && i + 1 < n && IsDigit(text[i + 1])) {
      size_t j = i + 1;
      while (j < n && IsDigit(text[j])) ++j;
      if (j == n || text[j] != ']') break;
      i = j + 1;
    } else if (c == '-' && i + 1 < n && IsWordChar(text[i + 1]) &&
               std::find(std::begin(kNamedSections), std::end(kNamedSections), previous) !=
                   std::end(kNamedSections)) {
      ++i;
    } else {
      break;
    }
  }
  return i;
}

size_t ScanNumber(const std::string& text, size_t i) {
  const size_t n = text.size();
  while (i < n && IsDigit(text[i])) ++i;
  if (i < n && text[i] == '.') {
    ++i;
    while (i < n && IsDigit(text[i])) ++i;
  }
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    size_t j = i + 1;
    if (j < n && (text[j] == '+' || text[j] == '-')) ++j;
    if (j < n && IsDigit(text[j])) {
      i = j;
      while (i < n && IsDigit(text[i])) ++i;
    }
  }
  return i;
}

absl::StatusOr<std::vector<Token>> Scan(const std::string& text) {
  std::vector<Token> tokens;
  const size_t n = text.size();
  size_t i = 0;
  auto add = [&](Kind kind, size_t end, std::string code) {
    tokens.push_back({kind, i, end, std::move(code)});
    i = end;
  };
  auto next_is = [&](char c) { return i + 1 < n && text[i + 1] == c; };
  while (i < n) {
    const char c = text[i];
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (IsDigit(c) || (c == '.' && i + 1 < n && IsDigit(text[i + 1]))) {
      const size_t end = ScanNumber(text, i);
      if (end < n && IsWordChar(text[end])) {
        return At(end, absl::StrCat("unexpected '", std::string(1, text[end]), "' after a number"));
      }
      add(Kind::kNumber, end, text.substr(i, end - i));
    } else if (absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const size_t end = ScanPath(text, i);
      const std::string word = text.substr(i, end - i);
      size_t after = end;
      while (after < n && absl::ascii_isspace(static_cast<unsigned char>(text[after]))) ++after;
      if (word == "and") {
        add(Kind::kAnd, end, "&& ");
      } else if (word == "or") {
        add(Kind::kOr, end, "||");
      } else if (after < n && text[after] == '(') {
        if (std::find(std::begin(kFunctions), std::end(kFunctions), word) == std::end(kFunctions)) {
          return At(i, absl::StrCat("unknown function '", word,
                                    "' (functions: ", absl::StrJoin(kFunctions, ", "), ")"));
        }
        add(Kind::kFunction, end, word);
      } else {
        add(Kind::kPath, end, word);
      }
    } else if (c == '+' || c == '-' || c == '*' || c == '/') {
      add(Kind::kArith, i + 1, std::string(1, c));
    } else if (c == '(') {
      add(Kind::kOpen, i + 1, "(");
    } else if (c == ')') {
      add(Kind::kClose, i + 1, ")");
    } else if (c == ',') {
      add(Kind::kComma, i + 1, ",");
    } else if (c == '<' || c == '>') {
      add(Kind::kCompare, next_is('=') ? i + 2 : i + 1,
          next_is('=') ? text.substr(i, 2) : text.substr(i, 1));
    } else if (c == '=' || c == '!') {
      if (!next_is('=')) {
        return At(i, c == '=' ? "'=' compares nothing: write '=='" : "'!' alone: write '!='");
      }
      add(Kind::kCompare, i + 2, text.substr(i, 2));
    } else if ((c == '&' || c == '|') && next_is(c)) {
      add(c == '&' ? Kind::kAnd : Kind::kOr, i + 2, text.substr(i, 2));
    } else {
      return At(i, absl::StrCat("unexpected '", std::string(1, c), "'"));
    }
  }
  if (tokens.empty()) return absl::InvalidArgumentError("empty expression");
  return tokens;
}

// The muParser variable for path number `index`, padded with '_' to the path's length (up to
// muParser's limit) so that positions in muParser's messages are positions in the text.
std::string VariableName(size_t index, size_t path_length) {
  std::string name = absl::StrCat("_p", index);
  const size_t width = std::min<size_t>(path_length, static_cast<size_t>(mu::MaxLenIdentifier));
  if (name.size() < width) name.append(width - name.size(), '_');
  return name;
}

// Splits the and/or structure of tokens [b, e) down to its comparisons.
class Splitter {
 public:
  Splitter(const std::string& text, const std::string& code, const std::vector<Token>& tokens)
      : text_(text), code_(code), tokens_(tokens), match_(tokens.size(), 0) {
    std::vector<size_t> open;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i].kind == Kind::kOpen) open.push_back(i);
      if (tokens[i].kind == Kind::kClose && !open.empty()) {
        match_[open.back()] = i;
        open.pop_back();
      }
    }
  }

  absl::Status Split(size_t b, size_t e, std::vector<ComparisonSpan>* out) const {
    while (e - b >= 2 && tokens_[b].kind == Kind::kOpen && match_[b] == e - 1) {
      ++b;
      --e;
    }
    for (Kind join : {Kind::kOr, Kind::kAnd}) {
      std::vector<size_t> at = TopLevel(b, e, join);
      if (at.empty()) continue;
      size_t start = b;
      at.push_back(e);
      for (size_t cut : at) {
        RETURN_IF_ERROR(Split(start, cut, out));
        start = cut + 1;
      }
      return absl::OkStatus();
    }
    if (!TopLevel(b, e, Kind::kComma).empty()) {
      return absl::InvalidArgumentError(absl::StrCat("'", Text(b, e), "': ',' outside a function"));
    }
    const std::vector<size_t> compare = TopLevel(b, e, Kind::kCompare);
    if (compare.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", Text(b, e),
                       "' is not a comparison: compare with ==, !=, <, <=, >, >= and join "
                       "comparisons with and/or"));
    }
    if (compare.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", Text(b, e), "' chains comparisons: join them with 'and'"));
    }
    const size_t k = compare.front();
    out->push_back({Text(b, k), text_.substr(tokens_[k].begin, tokens_[k].end - tokens_[k].begin),
                    Text(k + 1, e), Code(b, k), Code(k + 1, e)});
    return absl::OkStatus();
  }

 private:
  std::vector<size_t> TopLevel(size_t b, size_t e, Kind kind) const {
    std::vector<size_t> at;
    int depth = 0;
    for (size_t i = b; i < e; ++i) {
      if (tokens_[i].kind == Kind::kOpen) ++depth;
      if (tokens_[i].kind == Kind::kClose) --depth;
      if (depth == 0 && tokens_[i].kind == kind) at.push_back(i);
    }
    return at;
  }
  std::string Text(size_t b, size_t e) const {
    if (b >= e) return "";
    return text_.substr(tokens_[b].begin, tokens_[e - 1].end - tokens_[b].begin);
  }
  std::string Code(size_t b, size_t e) const {
    if (b >= e) return "";
    return code_.substr(tokens_[b].code_begin, tokens_[e - 1].code_end - tokens_[b].code_begin);
  }

  const std::string& text_;
  const std::string& code_;
  const std::vector<Token>& tokens_;
  std::vector<size_t> match_;
};

bool Compare(const std::string& op, double left, double right) {
  if (op == "==") return left == right;
  if (op == "!=") return left != right;
  if (op == "<") return left < right;
  if (op == "<=") return left <= right;
  if (op == ">") return left > right;
  return left >= right;  // ">="
}

}  // namespace

absl::StatusOr<Expression> Expression::Parse(const std::string& text) {
  ASSIGN_OR_RETURN(std::vector<Token> tokens, Scan(text));
  Expression x;
  x.text_ = text;
  std::map<std::string, size_t> index;
  size_t copied = 0;  // text before this offset is in code_
  for (Token& t : tokens) {
    x.code_.append(text, copied, t.begin - copied);  // the whitespace between tokens
    if (t.kind == Kind::kPath) {
      const std::string path = t.code;
      auto [it, inserted] = index.emplace(path, x.paths_.size());
      if (inserted) {
        x.paths_.push_back(path);
        x.variables_.push_back(VariableName(it->second, path.size()));
      }
      t.code = x.variables_[it->second];
    }
    t.code_begin = x.code_.size();
    x.code_ += t.code;
    t.code_end = x.code_.size();
    copied = t.end;
  }
  x.code_.append(text, copied, std::string::npos);

  // muParser checks the syntax; variables are bound to a dummy value. Its functions beyond the
  // grammar's, and operators such as ^ and ?:, never reach it: Scan rejects them.
  std::vector<double> dummy(x.paths_.size(), 1);
  try {
    mu::Parser parser;
    for (size_t i = 0; i < x.variables_.size(); ++i) parser.DefineVar(x.variables_[i], &dummy[i]);
    parser.SetExpr(x.code_);
    int results = 0;
    parser.Eval(results);
    if (results != 1) return absl::InvalidArgumentError("',' outside a function");
  } catch (const mu::Parser::exception_type& e) {
    // Speak of paths, not of the variables muParser was given (longest first: _p1 vs _p10).
    std::vector<size_t> order(x.variables_.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return x.variables_[a].size() > x.variables_[b].size(); });
    std::vector<std::pair<std::string, std::string>> replacements;
    for (size_t i : order) replacements.emplace_back(x.variables_[i], x.paths_[i]);
    std::string message = e.GetMsg();
    for (const auto& [from, to] : replacements)
      message = absl::StrReplaceAll(message, {{from, to}});
    return absl::InvalidArgumentError(absl::StrCat("syntax error: ", message));
  }
  Splitter splitter(x.text_, x.code_, tokens);
  RETURN_IF_ERROR(splitter.Split(0, tokens.size(), &x.comparisons_));
  return x;
}

absl::StatusOr<Evaluation> Expression::Evaluate(const std::vector<double>& values) const {
  if (values.size() != paths_.size()) {
    return absl::InternalError(
        absl::StrCat("expected ", paths_.size(), " values, got ", values.size()));
  }
  std::vector<double> bound = values;
  Evaluation result;
  try {
    mu::Parser parser;
    for (size_t i = 0; i < variables_.size(); ++i) parser.DefineVar(variables_[i], &bound[i]);
    auto side = [&](const std::string& code, const std::string& written) -> absl::StatusOr<double> {
      parser.SetExpr(code);
      const double value = parser.Eval();
      if (!std::isfinite(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", written, "' is not a number (division by zero)"));
      }
      return value;
    };
    for (const ComparisonSpan& c : comparisons_) {
      ComparisonValue v;
      ASSIGN_OR_RETURN(v.left, side(c.left_code, c.left));
      ASSIGN_OR_RETURN(v.right, side(c.right_code, c.right));
      v.passed = Compare(c.op, v.left, v.right);
      result.comparisons.push_back(v);
    }
    parser.SetExpr(code_);
    result.passed = parser.Eval() != 0;
  } catch (const mu::Parser::exception_type& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot evaluate: ", e.GetMsg()));
  }
  return result;
}

}  // namespace synq::controller::verdict
