#!/usr/bin/env bats

@test "placeholder runs" {
  true
}
