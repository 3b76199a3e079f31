from protune_mm.cli.benchmark_backbone import main

if __name__ == '__main__':
    main()
