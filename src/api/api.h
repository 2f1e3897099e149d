// The REST API of PRODUCT.md §4: routes, authentication, JSON bodies, and the resource handlers
// that turn each request into a whole new configuration document, validated by the same decoder
// as the YAML file and applied atomically through Control. [control]
#pragma once

#include <memory>
#include <string>

#include "api/control.h"
#include "api/http_server.h"
#include "api/router.h"
#include "api/tokens.h"

namespace fulcrum::api {

class Api {
 public:
  Api(Control& control, Tokens tokens);
  ~Api();

  // Serves one request; `respond` may be called later (metrics).
  void handle(Request request, Respond respond);
  // The route table, for tests and docs.
  const Router& router() const { return router_; }

 private:
  struct Call;
  Response dispatch(Call& call);
  void mutate(std::shared_ptr<Call> call, Respond respond);
  void apply_document(std::shared_ptr<Call> call, Respond respond);
  void forget_node(std::shared_ptr<Call> call, Respond respond);
  Response health(Call& call);
  Response explain(Call& call);

  Control& control_;
  Tokens tokens_;
  Router router_;
};

// The route table on its own (what Api serves), for the OpenAPI check and auth tests.
Router make_router();

}  // namespace fulcrum::api
