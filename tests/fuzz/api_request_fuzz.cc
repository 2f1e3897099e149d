// The admin API's request handling with arbitrary methods, paths, queries and bodies, over a node
// that accepts every valid change (a fake Control: no sockets, no store). Every request must be
// answered exactly once with a status and, for errors, the JSON error shape; nothing may crash.
//
// Input: "METHOD\nTARGET\nCONTENT-TYPE\n" then the body. The fake node starts each input with one
// load balancer so that resource paths find something.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "api/api.h"
#include "base/log.h"
#include "config/json.h"

namespace {

using namespace fulcrum;

class FakeControl final : public api::Control {
 public:
  const config::Config& config() const override { return config_; }
  void change(api::Edit edit, bool dry_run, api::EditKind,
              std::function<void(api::ApplyOutcome)> done) override {
    api::ApplyOutcome out;
    std::optional<config::Config> next = edit(config_);
    if (!next) {
      out.edit_refused = true;
    } else if (!dry_run) {
      config_ = std::move(*next);
      ++revision_;
    }
    out.revision = revision_;
    done(std::move(out));
  }
  api::NodeStatus status() const override { return {}; }
  int64_t revision() const override { return revision_; }
  std::vector<api::NodeView> nodes() const override { return {}; }
  void forget_node(const std::string&, std::function<void(int, base::Error)> done) override {
    done(404, base::Error::config("node", "not found"));
  }
  std::shared_ptr<const snapshot::Snapshot> snapshot() const override { return nullptr; }
  void render_metrics(std::function<void(std::string)> done) override { done("# none\n"); }
  bool ready() const override { return true; }

  config::Config config_;
  int64_t revision_ = 0;
};

const config::Config& seed() {
  static const config::Config c = [] {
    auto r = config::decode_json(
        R"({"loadbalancers":[{"name":"web","address":"127.0.0.1","server_groups":[)"
        R"({"name":"app","backends":[{"address":"127.0.0.1","port":9001}]}],"listeners":[)"
        R"({"protocol":"http","port":8080,"server_group":"app","rules":[)"
        R"({"name":"r","path":"/x","server_group":"app"}]}]}],)"
        R"("acls":[{"name":"office","entries":[{"cidr":"10.0.0.0/8"}]}]})");
    if (!r.ok()) std::abort();
    return *r;
  }();
  return c;
}

std::string_view take_line(std::string_view& in) {
  size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  base::set_log_level(base::LogLevel::kError);
  std::string_view in(reinterpret_cast<const char*>(data), size);
  FakeControl control;
  control.config_ = seed();
  api::Api api(control, api::Tokens{"admin-token-0123456789", "reader-token-0123456789", ""});
  api::Request req;
  req.method = std::string(take_line(in));
  std::string_view target = take_line(in);
  size_t q = target.find('?');
  req.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  req.content_type = std::string(take_line(in));
  req.body = std::string(in);
  req.authorization = "Bearer admin-token-0123456789";
  int answers = 0;
  api.handle(std::move(req), [&answers](api::Response r) {
    ++answers;
    if (r.status < 200 || r.status > 599) std::abort();
    if (r.status >= 400 && r.body.find("\"error\"") == std::string::npos) std::abort();
  });
  if (answers != 1) std::abort();
  return 0;
}
