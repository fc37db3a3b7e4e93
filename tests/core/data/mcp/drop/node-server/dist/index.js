#!/usr/bin/env node
console.error("tickets server");
