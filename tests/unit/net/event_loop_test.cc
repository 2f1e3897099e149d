#include "net/event_loop.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

namespace fulcrum::net {
namespace {

std::unique_ptr<EventLoop> make_loop() {
  auto loop = EventLoop::create();
  EXPECT_TRUE(loop.ok());
  return std::move(*loop);
}

struct Recorder {
  std::vector<int>* order;
  int tag;
  EventLoop* loop;
  bool stop_after = false;
  static void fire(void* self) {
    auto* r = static_cast<Recorder*>(self);
    r->order->push_back(r->tag);
    if (r->stop_after) r->loop->stop();
  }
};

TEST(EventLoop, TimersFireInDeadlineOrderAndCancelledOnesDoNot) {
  auto loop = make_loop();
  std::vector<int> order;
  Recorder a{&order, 1, loop.get()}, b{&order, 2, loop.get()}, c{&order, 3, loop.get(), true},
      d{&order, 4, loop.get()};
  Timer ta(*loop, &Recorder::fire, &a), tb(*loop, &Recorder::fire, &b),
      tc(*loop, &Recorder::fire, &c), td(*loop, &Recorder::fire, &d);
  tb.arm_in(20);
  ta.arm_in(10);
  tc.arm_in(40);
  td.arm_in(30);
  td.cancel();
  tb.arm_in(25);  // re-arming replaces the earlier deadline
  loop->run();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(EventLoop, DestroyedTimerNeverFires) {
  auto loop = make_loop();
  std::vector<int> order;
  Recorder a{&order, 1, loop.get()}, stop{&order, 9, loop.get(), true};
  auto t = std::make_unique<Timer>(*loop, &Recorder::fire, &a);
  t->arm_in(5);
  t.reset();
  Timer ts(*loop, &Recorder::fire, &stop);
  ts.arm_in(20);
  loop->run();
  EXPECT_EQ(order, (std::vector<int>{9}));
}

TEST(EventLoop, PostFromAnotherThreadRunsOnLoop) {
  auto loop = make_loop();
  std::thread::id ran_on;
  std::thread poster([&] {
    loop->post([&] {
      ran_on = std::this_thread::get_id();
      loop->stop();
    });
  });
  loop->run();
  poster.join();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

struct Reader final : IoHandler {
  int fd;
  EventLoop* loop;
  std::string got;
  void on_io(uint32_t) override {
    char buf[64];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    if (got.size() >= 5) loop->stop();
  }
};

TEST(EventLoop, EdgeTriggeredReadinessIsDelivered) {
  auto loop = make_loop();
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  Reader r;
  r.fd = sv[0];
  r.loop = loop.get();
  ASSERT_TRUE(loop->add(sv[0], EPOLLIN, &r).ok());
  ASSERT_EQ(::write(sv[1], "hel", 3), 3);
  loop->post([&] { ASSERT_EQ(::write(sv[1], "lo", 2), 2); });
  loop->run();
  EXPECT_EQ(r.got, "hello");
  ::close(sv[0]);
  ::close(sv[1]);
}

struct Tracked final : Deferred {
  bool* destroyed;
  explicit Tracked(bool* d) : destroyed(d) {}
  ~Tracked() override { *destroyed = true; }
};

TEST(EventLoop, DeferredDeletionWaitsForTheBatch) {
  auto loop = make_loop();
  bool destroyed = false;
  bool seen_alive_after_defer = false;
  loop->post([&] {
    loop->defer_delete(std::make_unique<Tracked>(&destroyed));
    seen_alive_after_defer = !destroyed;
    loop->stop();
  });
  loop->run();
  EXPECT_TRUE(seen_alive_after_defer);
  EXPECT_TRUE(destroyed);
}

// A posted task may destroy a handler whose event is in the same batch (a listener removed by a
// configuration change while a connection is waiting on it): posted work runs after the batch.
TEST(EventLoop, PostedWorkRunsAfterTheBatchOfEvents) {
  auto loop = make_loop();
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  std::vector<std::string> order;
  struct Handler final : IoHandler {
    std::vector<std::string>* order;
    void on_io(uint32_t) override { order->push_back("io"); }
  };
  auto handler = std::make_unique<Handler>();
  handler->order = &order;
  ASSERT_TRUE(loop->add(fds[0], EPOLLIN, handler.get()).ok());
  // The wake-up becomes ready first, then the socket: both come back from one epoll_wait.
  loop->post([&] {
    order.push_back("posted");
    loop->remove(fds[0]);
    handler.reset();
    loop->stop();
  });
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  loop->run();
  EXPECT_EQ(order, (std::vector<std::string>{"io", "posted"}));
  ::close(fds[0]);
  ::close(fds[1]);
}

// Connections arm a long idle timer and cancel it when they close: the heap must not keep one
// stale entry per closed connection until its deadline.
TEST(EventLoop, CancelledTimersDoNotAccumulate) {
  auto loop = make_loop();
  std::vector<int> order;
  Recorder r{&order, 1, loop.get()};
  Timer keep(*loop, &Recorder::fire, &r);
  keep.arm_in(900000);
  for (int i = 0; i < 100000; ++i) {
    Timer t(*loop, &Recorder::fire, &r);
    t.arm_in(5000);    // connect timeout
    t.arm_in(900000);  // then the idle timeout
    t.cancel();        // the connection ends
  }
  EXPECT_EQ(loop->armed_timers(), 1u);
  EXPECT_LT(loop->timer_heap_size(), 2100u);
  // The timer that stayed armed is still there and still fires in order with a new one.
  Timer soon(*loop, &Recorder::fire, &r);
  r.stop_after = true;
  soon.arm_in(1);
  loop->run();
  EXPECT_EQ(order, (std::vector<int>{1}));
  EXPECT_TRUE(keep.armed());
}

TEST(EventLoop, TryPostRunsWhatItAcceptedAndRefusesOnceTheLoopHasFinished) {
  auto loop = make_loop();
  int ran = 0;
  auto counted = std::make_shared<int>(0);
  EXPECT_TRUE(loop->try_post([&] { ++ran; }));
  std::thread t([&] { loop->run(); });
  EXPECT_TRUE(loop->try_post([&] { ++ran; }));
  loop->stop();
  t.join();
  EXPECT_EQ(ran, 2);  // accepted before the end: both ran
  // Finished: refused, and the function (with what it holds) is dropped at once.
  EXPECT_FALSE(loop->try_post([&, counted] { ++ran; }));
  EXPECT_EQ(counted.use_count(), 1);
  EXPECT_EQ(ran, 2);
}

}  // namespace
}  // namespace fulcrum::net
