// Shared by the integration tests: runs the real hopgate-impair binary (path from the
// HG_IMPAIR_BIN compile definition) and talks to its control port. Every wait has a deadline.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace hopgate::testing {

using namespace std::chrono_literals;

// Waits until `fd` is readable or the deadline passes.
inline sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

inline bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return false;
        }
        pollfd p{fd, POLLIN, 0};
        const int r = poll(&p, 1, static_cast<int>(left.count()));
        if (r > 0) {
            return true;
        }
        if (r < 0 && errno != EINTR) {
            return false;
        }
    }
}

inline int tcp_connect(std::uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    auto a = loopback(port);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(fd);
        return -1;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

inline bool write_all(int fd, const std::uint8_t* data, std::size_t n) {
    std::size_t off = 0;
    while (off < n) {
        const ssize_t w = write(fd, data + off, n - off);
        if (w <= 0) {
            return false;
        }
        off += static_cast<std::size_t>(w);
    }
    return true;
}

class ImpairProcess {
  public:
    explicit ImpairProcess(std::vector<std::string> args) {
        int out[2];
        if (pipe(out) != 0) {
            return;
        }
        pid_ = fork();
        if (pid_ == 0) {
            dup2(out[1], STDOUT_FILENO);
            if (getenv("HG_TEST_VERBOSE") == nullptr) {
                const int devnull = open("/dev/null", O_WRONLY);
                dup2(devnull, STDERR_FILENO);
            }
            close(out[0]);
            close(out[1]);
            std::vector<char*> argv;
            std::string bin = HG_IMPAIR_BIN;
            argv.push_back(bin.data());
            for (auto& a : args) {
                argv.push_back(a.data());
            }
            argv.push_back(nullptr);
            execv(bin.c_str(), argv.data());
            _exit(127);
        }
        close(out[1]);
        out_fd_ = out[0];
        start_line_ = read_line(std::chrono::steady_clock::now() + 5s);
        listen_port_ = port_after("\"listen\":\"127.0.0.1:");
        control_port_ = port_after("\"control\":\"127.0.0.1:");
    }
    ImpairProcess(const ImpairProcess&) = delete;
    ImpairProcess& operator=(const ImpairProcess&) = delete;
    ~ImpairProcess() {
        // A relay that started must exit cleanly on SIGTERM (and, under ASan, without reports).
        const bool was_running = pid_ > 0 && started();
        if (stop() != 0 && was_running) {
            ADD_FAILURE() << "hopgate-impair exited with status " << exit_status_;
        }
        if (out_fd_ >= 0) {
            close(out_fd_);
        }
    }

    bool started() const { return listen_port_ != 0; }
    const std::string& start_line() const { return start_line_; }
    std::uint16_t listen_port() const { return listen_port_; }
    std::uint16_t control_port() const { return control_port_; }
    void signal(int sig) const { kill(pid_, sig); }

    // SIGTERM, then everything it printed after the start line; returns the exit status.
    int stop(std::string* rest = nullptr) {
        if (pid_ <= 0) {
            return exit_status_;
        }
        kill(pid_, SIGTERM);
        std::string text;
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        char buf[4096];
        while (wait_readable(out_fd_, deadline)) {
            const ssize_t n = read(out_fd_, buf, sizeof buf);
            if (n <= 0) {
                break;
            }
            text.append(buf, static_cast<std::size_t>(n));
        }
        int status = 0;
        for (int i = 0; i < 300; ++i) {
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                break;
            }
            std::this_thread::sleep_for(10ms);
        }
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, &status, 0);
            pid_ = -1;
            ADD_FAILURE() << "hopgate-impair did not exit on SIGTERM";
        }
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (rest != nullptr) {
            *rest = text;
        }
        return exit_status_;
    }

  private:
    std::string read_line(std::chrono::steady_clock::time_point deadline) {
        std::string line;
        char c = 0;
        while (wait_readable(out_fd_, deadline)) {
            if (read(out_fd_, &c, 1) != 1 || c == '\n') {
                break;
            }
            line += c;
        }
        return line;
    }
    std::uint16_t port_after(const std::string& prefix) const {
        const auto at = start_line_.find(prefix);
        if (at == std::string::npos) {
            return 0;
        }
        return static_cast<std::uint16_t>(std::stoul(start_line_.substr(at + prefix.size())));
    }

    pid_t pid_ = -1;
    int out_fd_ = -1;
    std::string start_line_;
    std::uint16_t listen_port_ = 0;
    std::uint16_t control_port_ = 0;
    int exit_status_ = -1;
};

class ControlClient {
  public:
    explicit ControlClient(std::uint16_t port) : fd_(tcp_connect(port)) {}
    ~ControlClient() {
        if (fd_ >= 0) {
            close(fd_);
        }
    }
    bool connected() const { return fd_ >= 0; }

    // Sends one line and returns the reply line (empty on timeout or close).
    std::string command(const std::string& line) {
        const std::string msg = line + "\n";
        if (!write_all(fd_, reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size())) {
            return {};
        }
        return read_line();
    }
    std::string read_line() {
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        for (;;) {
            if (auto nl = pending_.find('\n'); nl != std::string::npos) {
                std::string line = pending_.substr(0, nl);
                pending_.erase(0, nl + 1);
                return line;
            }
            if (!wait_readable(fd_, deadline)) {
                return {};
            }
            char buf[4096];
            const ssize_t n = read(fd_, buf, sizeof buf);
            if (n <= 0) {
                return {};
            }
            pending_.append(buf, static_cast<std::size_t>(n));
        }
    }
    // True if the server closed the connection within the timeout.
    bool closed_by_peer() {
        if (!wait_readable(fd_, std::chrono::steady_clock::now() + 2s)) {
            return false;
        }
        char c;
        return read(fd_, &c, 1) <= 0;
    }
    std::string stats() {
        std::string r = command("stats");
        return r.rfind("ok ", 0) == 0 ? r.substr(3) : std::string();
    }

  private:
    int fd_;
    std::string pending_;
};

}  // namespace hopgate::testing
