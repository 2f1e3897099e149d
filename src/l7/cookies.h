// Cookie handling for sticky sessions (tokens: snapshot::sticky_token). Pure. [any]
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "http/message.h"

namespace fulcrum::l7 {

// The value of cookie `name` in the request's Cookie headers (the first one found), if any.
std::optional<std::string_view> find_cookie(std::span<const http::Header> headers,
                                            std::string_view name);

// The request's cookies joined into one Cookie value ("a=1; b=2"), with cookie `name` left out,
// or with its value replaced by `replacement` when one is given. Empty when nothing is left.
std::string rebuild_cookies(std::span<const http::Header> headers, std::string_view name,
                            std::optional<std::string_view> replacement);

// For a Set-Cookie value "NAME=V; attrs": when its name is `name`, the value with V replaced by
// "<prefix>~V"; nullopt for any other cookie.
std::optional<std::string> prefix_set_cookie(std::string_view set_cookie, std::string_view name,
                                             std::string_view prefix);

// Splits "<token>~V" into (token, V); nullopt when there is no '~'.
std::optional<std::pair<std::string_view, std::string_view>> split_prefixed(std::string_view v);

}  // namespace fulcrum::l7
