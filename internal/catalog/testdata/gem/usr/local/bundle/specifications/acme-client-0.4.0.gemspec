# frozen_string_literal: true

Gem::Specification.new do |spec|
  spec.name          = "acme-client"
  spec.version       = "0.4.0"
  spec.authors       = ["ACME Platform Team"]
  spec.summary       = "Client for the ACME internal API"
  spec.license       = 'Apache-2.0'
  spec.files         = Dir["lib/**/*.rb"]
  spec.require_paths = ["lib"]
end
