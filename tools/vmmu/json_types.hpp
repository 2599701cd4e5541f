#pragma once
// The two JSON document types the commands use, named once for the whole tool: Json for what
// they read, OJson (keys kept in insertion order) for the reports they write.

#include <nlohmann/json.hpp>

namespace vmmu::cli {

using Json = nlohmann::json;
using OJson = nlohmann::ordered_json;

}  // namespace vmmu::cli
